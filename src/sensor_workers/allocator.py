"""glibc's allocator set up for a process that receives multi-megabyte messages at camera rate.

Every image an rclpy subscriber takes passes through fresh buffers of the frame's size: the
rosidl C message rmw deserializes into and the Python object rclpy converts it to. glibc serves
blocks above its mmap threshold with mmap and returns them to the kernel on free (and trims the
heap top past its trim threshold), so each frame's buffers are new pages again: page faults and
zeroing by the kernel on every frame. Measured (2026-12-02, a 2448x2048 Mono8 stream at 30 fps,
reliable, into a single-threaded rclpy subscriber): 40 % of a core in the subscriber, mostly
`clear_page_erms` and `exc_page_fault`, and 14 ms from DDS write to callback at p50. With a fixed
32 MB mmap threshold and a 512 MB trim threshold: 12 % of a core and 5 ms. glibc's dynamic
threshold avoids the churn in some processes and not in others: the bridge (which holds the
newest frame for its clients) showed no page faults to speak of and no measurable change; the
camera worker, measured again with 4096x4096 frames, did (camera/node.py), and uses this too,
as do the test probes.

Fixed thresholds also switch off glibc's dynamic threshold; freed frame buffers stay in the
process for the next frame, so resident memory stays near its peak instead of shrinking.
"""

import ctypes

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# glibc's largest mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX): a 4096x4096 Mono8
# frame (16 MB) fits below it; larger messages are still mapped per message.
MMAP_THRESHOLD_BYTES = 32 << 20
TRIM_THRESHOLD_BYTES = 512 << 20


def keep_large_buffers() -> bool:
    """Keep freed multi-megabyte blocks for reuse; False where glibc's mallopt is missing."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    except AttributeError:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
