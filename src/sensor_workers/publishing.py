"""Publishing for hardware loops: off the loop thread, and without the GIL.

rclpy's `Publisher.publish()` calls `rcl_publish` with the GIL held (rclpy 7.1.6), and Fast DDS
sends synchronously under one mutex per participant (`RTPSParticipantImpl::sendSync`). When a
send stalls (its shared-memory transport health-checks a dead peer's port for up to
`healthy_check_timeout_ms`, 1 s by default), every Python thread of the process stops, the
hardware loop included, and the device's buffer overflows. See docs/manager.md, "Fault
isolation".

`LoopPublisher` takes that off the loop: the loop serializes a message (microseconds for a
wrench) and hands the bytes over through a bounded queue; a thread of its own publishes them with
`rcl_publish_serialized_message` called through ctypes, which releases the GIL for the call. A
stalled send then holds only that thread; the loop reads on. When the queue is full the oldest
message is dropped and counted.

After a stall the thread catches up paced: at most `catch_up_burst` (200) messages back to
back, then `catch_up_rate_hz` (10 kHz) on average; in steady operation the bucket stays full
and nothing waits. Sent back to back, a backlog reached the subscribers faster than they drained it
and they lost part of it: 2566 of 18000 wrenches in bursts of 2000 and 4000 to an idle rclpy
subscriber, none with a 50-200 us pause between sends. In the fault-isolation test a 441 ms stall
was followed by 53 wrenches lost mid-burst at a busy subscriber. Those wrenches travel through
the shared-memory transport that rmw_fastrtps adds for ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
(512 KB segment, 512-message port queues), which no profile can resize; the sender's
"Buffer is being invalidated, segment_size may be insufficient" came with the loss. At 1 kHz a
1 s backlog is gone after ~110 ms. A bucket rather than a sleep before every message: a
wake-up that comes 1 ms late would slow such a catch-up to the data rate itself, while the
bucket keeps the tokens a late wake-up earned.
"""

from collections import deque
import ctypes
import logging
import threading
import time

from rclpy.publisher import Publisher
from rclpy.serialization import serialize_message

log = logging.getLogger(__name__)


class _Allocator(ctypes.Structure):
    _fields_ = [('allocate', ctypes.c_void_p), ('deallocate', ctypes.c_void_p),
                ('reallocate', ctypes.c_void_p), ('zero_allocate', ctypes.c_void_p),
                ('state', ctypes.c_void_p)]


class _SerializedMessage(ctypes.Structure):
    """rcl_serialized_message_t (rcutils_uint8_array_t)."""

    _fields_ = [('buffer', ctypes.c_char_p), ('buffer_length', ctypes.c_size_t),
                ('buffer_capacity', ctypes.c_size_t), ('allocator', _Allocator)]


_rcl = ctypes.CDLL('librcl.so')  # loaded by rclpy already; CDLL calls release the GIL
_rcl_publish_serialized = _rcl.rcl_publish_serialized_message
_rcl_publish_serialized.argtypes = [ctypes.c_void_p, ctypes.POINTER(_SerializedMessage),
                                    ctypes.c_void_p]
_rcl_publish_serialized.restype = ctypes.c_int


def publish_serialized_without_gil(publisher: Publisher, data: bytes) -> bool:
    """Publish CDR bytes on `publisher`, releasing the GIL while DDS sends; True when sent."""
    message = _SerializedMessage(data, len(data), len(data))
    return _rcl_publish_serialized(publisher.handle.pointer, ctypes.byref(message), None) == 0


class LoopPublisher:
    """A bounded queue (messages and bytes) and a publishing thread between a loop and DDS.

    `submit()` never blocks. The caller must `stop()` this before it destroys the publishers it
    submitted to (the thread uses their handles).
    """

    def __init__(self, name: str, capacity: int, max_bytes: int = 64 << 20,
                 catch_up_rate_hz: float = 10_000.0, catch_up_burst: int = 200) -> None:
        self.name = name
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.catch_up_rate_hz = catch_up_rate_hz
        self.catch_up_burst = catch_up_burst
        self.dropped = 0
        # rcl_publish_serialized_message errors (e.g. while the context shuts down).
        self.failed = 0
        self._queue: deque[tuple[Publisher, bytes]] = deque()
        self._queued_bytes = 0
        self._sending = False
        self._ready = threading.Condition()
        self._running = True
        self._thread = threading.Thread(target=self._run, name=f'{name}-publish', daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        return len(self._queue)

    def submit(self, publisher: Publisher, message: object) -> bool:
        """Queue `message` for `publisher`; return False when the oldest had to be dropped."""
        return self.submit_serialized(publisher, serialize_message(message))

    def submit_serialized(self, publisher: Publisher, data: bytes) -> bool:
        kept = True
        with self._ready:
            while self._queue and (len(self._queue) >= self.capacity
                                   or self._queued_bytes + len(data) > self.max_bytes):
                self._queued_bytes -= len(self._queue.popleft()[1])
                self.dropped += 1
                kept = False
            self._queue.append((publisher, data))
            self._queued_bytes += len(data)
            self._ready.notify_all()
        return kept

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until everything queued so far is sent; False if DDS held it up past `timeout`.

        A worker calls this on deactivate, after its loop stopped and before its publishers go
        inactive: what the loop counted as published is then really published.
        """
        with self._ready:
            return self._ready.wait_for(lambda: not self._queue and not self._sending, timeout)

    def stop(self, timeout: float = 2.0) -> None:
        """Publish what is queued (for up to `timeout`), then end the thread."""
        with self._ready:
            self._running = False
            self._ready.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning('%s: publishing thread still blocked in DDS after %.1f s',
                        self.name, timeout)

    def _run(self) -> None:
        tokens, refilled = float(self.catch_up_burst), time.monotonic()
        while True:
            with self._ready:
                self._sending = False
                self._ready.notify_all()
                while not self._queue and self._running:
                    self._ready.wait()
                if not self._queue:
                    return
                publisher, data = self._queue.popleft()
                self._queued_bytes -= len(data)
                self._sending = True
            # A token bucket: never more than `catch_up_burst` back to back, then
            # `catch_up_rate_hz` on average (a late wake-up leaves tokens for the next batch,
            # so a loaded machine slows the catch-up only when it oversleeps by > 20 ms).
            now = time.monotonic()
            tokens = min(self.catch_up_burst, tokens + (now - refilled) * self.catch_up_rate_hz)
            refilled = now
            if tokens < 1.0:
                time.sleep((1.0 - tokens) / self.catch_up_rate_hz)
                now = time.monotonic()
                tokens += (now - refilled) * self.catch_up_rate_hz
                refilled = now
            tokens -= 1.0
            # Lifecycle publishers publish only while active, like LifecyclePublisher.publish.
            if not getattr(publisher, 'is_activated', True):
                continue
            if not publish_serialized_without_gil(publisher, data):
                self.failed += 1
