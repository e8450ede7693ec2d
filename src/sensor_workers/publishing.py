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

After a stall the thread catches up paced: at `CATCH_UP_FACTOR` (2) times the stream's own rate
(`pace()`), at most `CATCH_UP_BURST_S` (25 ms) of that back to back; in steady operation the
bucket stays full and nothing waits. The catch-up must not outrun the subscribers: an rclpy
subscriber with the product's QoS (KEEP_LAST 200) takes a few thousand messages per second at
best. Measured (2026-12-02, a 1 kHz stream with a 350-message backlog every 2 s, 16000 messages,
a subscriber in another process): at 200 back to back then 10 kHz it lost 1116 on an idle
machine and ~1300 with one or two CPU hogs; at 2x the rate with a 25 ms burst, 0 idle, 0 with
one hog, 184 with a hog per core. The soak's 170 F/T samples lost outside kill windows were such
catch-ups, after the 333 ms stalls a new participant causes. Sent back to back, a backlog also
overflowed the 512-message port queue of the shared-memory transport that rmw_fastrtps adds for
ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST: 2566 of 18000 wrenches lost in bursts of 2000 and
4000, with the sender's "Buffer is being invalidated, segment_size may be insufficient". At
1 kHz a 333 ms backlog is gone ~330 ms after the stall. A bucket rather than a sleep before every
message: a wake-up that comes late would slow such a catch-up to the data rate itself, while the
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

# A backlog is sent at this multiple of the stream's rate, at most this long of it back to back.
CATCH_UP_FACTOR = 2.0
CATCH_UP_BURST_S = 0.025


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
                 stream_rate_hz: float = 1000.0) -> None:
        self.name = name
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.catch_up_rate_hz = 0.0
        self.catch_up_burst = 1
        self.pace(stream_rate_hz)
        self.dropped = 0
        # rcl_publish_serialized_message errors (e.g. while the context shuts down).
        self.failed = 0
        # The longest single DDS send since `take_longest_send_s()`: a send that stalls in DDS
        # shows here, apart from waits that come from the loop's own bursts (the pacing).
        self._longest_send_s = 0.0
        self._queue: deque[tuple[Publisher, bytes]] = deque()
        self._queued_bytes = 0
        self._sending = False
        self._ready = threading.Condition()
        self._running = True
        self._thread = threading.Thread(target=self._run, name=f'{name}-publish', daemon=True)
        self._thread.start()

    def pace(self, stream_rate_hz: float) -> None:
        """Set the rate the loop submits at (all topics together); backlogs follow from it."""
        self.catch_up_rate_hz = CATCH_UP_FACTOR * max(stream_rate_hz, 1.0)
        self.catch_up_burst = max(1, round(self.catch_up_rate_hz * CATCH_UP_BURST_S))

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

    def take_longest_send_s(self) -> float:
        """Return the longest DDS send since the last call, and start measuring afresh."""
        with self._ready:
            longest, self._longest_send_s = self._longest_send_s, 0.0
        return longest

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
            # so a loaded machine slows the catch-up only when it oversleeps by > 25 ms).
            now = time.monotonic()
            tokens = min(self.catch_up_burst, tokens + (now - refilled) * self.catch_up_rate_hz)
            refilled = now
            if tokens < 1.0:
                time.sleep((1.0 - tokens) / self.catch_up_rate_hz)
                now = time.monotonic()
                tokens += (now - refilled) * self.catch_up_rate_hz
                refilled = now
            tokens -= 1.0
            self._send(publisher, data)

    def _send(self, publisher: Publisher, data: bytes) -> None:
        # Lifecycle publishers publish only while active, like LifecyclePublisher.publish.
        # What a deactivate's flush left queued (it waits 2 s for DDS) is lost: counted,
        # or a subscriber would see fewer messages than the loop says it published.
        if not getattr(publisher, 'is_activated', True):
            with self._ready:
                self.dropped += 1
            return
        started = time.monotonic()
        sent = publish_serialized_without_gil(publisher, data)
        took = time.monotonic() - started
        with self._ready:
            self._longest_send_s = max(self._longest_send_s, took)
            if not sent:
                self.failed += 1
