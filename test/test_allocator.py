"""keep_large_buffers: a frame-sized buffer freed and allocated again costs no new pages."""

import json
import subprocess
import sys

FRAME_BYTES = 2448 * 2048
FRAMES = 40

# In a fresh interpreter (the allocator's settings are per process, and this one's are set
# already), in a thread (rclpy takes messages in the executor's thread, whose allocations go to
# an arena of their own): per frame, a few frame-sized buffers alive at once and then freed, as
# when rclpy takes an image (the C message, the bytes converted from it, the Python message).
PROGRAM = f"""
import json, resource, sys, threading
from sensor_workers.allocator import keep_large_buffers
tuned = sys.argv[1] == 'tuned' and keep_large_buffers()

def take_frames():
    for _ in range({FRAMES}):
        c_message = bytearray({FRAME_BYTES})  # zero-filled: every page is touched
        converted = bytes(c_message)
        python_message = bytearray(converted)
        del c_message, converted, python_message

before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
thread = threading.Thread(target=take_frames)
thread.start()
thread.join()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({{'tuned': tuned, 'faults': faults}}))
"""


def page_faults(mode: str) -> dict:
    output = subprocess.run([sys.executable, '-c', PROGRAM, mode], capture_output=True,
                            text=True, check=True, timeout=60).stdout
    return json.loads(output)


def test_freed_frames_are_reused_instead_of_faulted_in_again():
    pages_per_frame = FRAME_BYTES // 4096
    default = page_faults('default')
    tuned = page_faults('tuned')
    assert tuned['tuned'] is True
    # By default glibc hands such blocks back to the kernel: new pages for most frames.
    assert default['faults'] >= FRAMES * pages_per_frame, default
    # Tuned, only the first frame's buffers are new pages.
    assert tuned['faults'] <= 4 * pages_per_frame, tuned
