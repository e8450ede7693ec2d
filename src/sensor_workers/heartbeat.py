"""Worker heartbeat: one typed record, sent from the hardware loop's own progress.

A timer in the executor would keep beating while the hardware loop hangs; calling `beat()` from
the loop itself means a missing heartbeat is a stuck loop, and `samples` that stop advancing are
a stalled device.

Each beat goes two ways:
- into the pipe the manager handed this process (`HEARTBEAT_FD_ENV`), a fixed-size binary
  record written without blocking. The manager judges liveness from it alone, so neither a DDS
  stall in the worker nor one in the manager can fake a dead worker;
- onto `~/heartbeat` (diagnostic_msgs/DiagnosticStatus) for every other tool (the bridge, rqt),
  through the worker's `LoopPublisher`, so publishing never holds up the loop.

A warm standby writes one record with `seq` 0 (`STANDBY_READY_SEQ`) into its pipe when it is
ready to take over; a worker's beats are numbered from 1.
"""

from collections import deque
from dataclasses import dataclass
import errno
import os
import struct
import threading
import time

from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.node import Node

from sensor_workers import qos
from sensor_workers.diagnostics import OK, level_of, make_status
from sensor_workers.lifetime import HEARTBEAT_FD_ENV
from sensor_workers.publishing import LoopPublisher

# The `seq` of a standby's "ready to take over" record (standby.py).
STANDBY_READY_SEQ = 0


@dataclass(frozen=True)
class HeartbeatRecord:
    """One heartbeat, as the worker sent it."""

    seq: int
    # Frames or samples published so far, and samples the device lost.
    samples: int
    dropped: int
    rate_hz: float
    pid: int
    # Native id of the loop thread: the manager reads its state in /proc/<pid>/task/<tid>.
    tid: int
    # CLOCK_MONOTONIC (system-wide on Linux) when the loop sent it.
    sent_ns: int
    level: int = ord(OK)  # DiagnosticStatus levels are bytes; the record packs an int
    # Messages the loop handed to its publisher that had to be dropped (queue full).
    queue_dropped: int = 0

    _FORMAT = struct.Struct('<IQQdIIQBQ')
    SIZE = _FORMAT.size
    # The fields `~/heartbeat` carries, with their types (DiagnosticStatus values are strings).
    _STATUS_FIELDS = {'seq': int, 'samples': int, 'rate_hz': float, 'dropped': int, 'pid': int,
                      'queue_dropped': int}

    def pack(self) -> bytes:
        return self._FORMAT.pack(self.seq, self.samples, self.dropped, self.rate_hz, self.pid,
                                 self.tid, self.sent_ns, self.level, self.queue_dropped)

    @property
    def standby_ready(self) -> bool:
        return self.seq == STANDBY_READY_SEQ

    @classmethod
    def unpack_all(cls, data: bytes) -> list['HeartbeatRecord']:
        """Decode the whole records in `data` (pipe writes of one record are atomic)."""
        usable = len(data) - len(data) % cls.SIZE
        return [cls(*fields) for fields in cls._FORMAT.iter_unpack(data[:usable])]

    def to_status(self, name: str, message: str, hardware_id: str) -> DiagnosticStatus:
        """Return the `~/heartbeat` message: what other tools see of this record."""
        return make_status(name, self.level, message, hardware_id, {
            key: getattr(self, key) for key in self._STATUS_FIELDS})

    @classmethod
    def from_status(cls, status: DiagnosticStatus) -> 'HeartbeatRecord':
        """Decode a `~/heartbeat` message; `tid` and `sent_ns` are not in it (0).

        Raises ValueError for a status that is not a heartbeat of ours.
        """
        values = {kv.key: kv.value for kv in status.values}
        try:
            fields = {key: kind(values[key]) for key, kind in cls._STATUS_FIELDS.items()}
        except (KeyError, ValueError) as error:
            raise ValueError(f'not a heartbeat: {error}') from None
        return cls(**fields, tid=0, sent_ns=0, level=level_of(status))


# The rate a heartbeat reports is taken over this long: over one heartbeat period (100 ms), a
# loop that caught up after a 10 ms hiccup reported 882 Hz for an 800 Hz sensor.
RATE_WINDOW_S = 1.0


class RateWindow:
    """Samples per second over the last `window_s`, from (time, cumulative samples) points."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._points: deque[tuple[float, int]] = deque()

    def update(self, now: float, samples: int) -> float:
        """Add a point; return the rate since the newest point at least `window_s` old."""
        points = self._points
        if points and (samples < points[-1][1] or now < points[-1][0]):
            points.clear()  # a counter or clock that went back: start again
        while len(points) >= 2 and points[1][0] <= now - self.window_s:
            points.popleft()
        rate = 0.0
        if points and now > points[0][0]:
            rate = (samples - points[0][1]) / (now - points[0][0])
        points.append((now, samples))
        return rate

    def clear(self) -> None:
        self._points.clear()


class Heartbeat:
    """Rate-limited heartbeat of a worker; `beat()` is called from the loop thread."""

    def __init__(self, node: Node, period_s: float, publisher: LoopPublisher) -> None:
        self.period_s = period_s
        self._name = node.get_fully_qualified_name()
        self._topic = node.create_publisher(DiagnosticStatus, '~/heartbeat', qos.HEARTBEAT)
        self._queue = publisher
        self._pipe = _pipe_from_environment()
        self._pid = os.getpid()
        self._seq = 0
        self._next_due = 0.0
        self._rate = RateWindow()
        self.rate_hz = 0.0

    def beat(
        self,
        samples: int,
        dropped: int = 0,
        level: int | bytes = OK,
        message: str = 'running',
        hardware_id: str = '',
        now: float | None = None,
    ) -> bool:
        """Send a heartbeat if one is due; return whether one was sent.

        Cheap when none is due, so the loop may call it once per sample.
        """
        now = time.monotonic() if now is None else now
        if now < self._next_due:
            return False
        self.rate_hz = self._rate.update(now, samples)
        # Schedule from `now`, not from the previous due time: after a hiccup, do not burst.
        self._next_due = now + self.period_s
        self._seq += 1
        record = HeartbeatRecord(
            seq=self._seq, samples=samples, dropped=dropped, rate_hz=self.rate_hz,
            pid=self._pid, tid=threading.get_native_id(), sent_ns=time.monotonic_ns(),
            level=level[0] if isinstance(level, bytes) else level,
            queue_dropped=self._queue.dropped)
        if self._pipe is not None:
            self._write_pipe(self._pipe, record.pack())
        self._queue.submit(self._topic, record.to_status(self._name, message, hardware_id))
        return True

    def reset(self) -> None:
        """Forget the rate baseline, e.g. when the loop restarts after a deactivate."""
        self._next_due = 0.0
        self._rate.clear()
        self.rate_hz = 0.0

    def _write_pipe(self, pipe: int, data: bytes) -> None:
        try:
            os.write(pipe, data)
        except BlockingIOError:
            pass  # the manager is behind: it has a newer beat coming, nothing to wait for
        except OSError as error:
            if error.errno != errno.EPIPE:
                raise
            os.close(pipe)  # the manager is gone; die_with_parent ends us
            self._pipe = None


def announce_standby_ready() -> None:
    """Tell the manager through the heartbeat pipe that this standby can take over now."""
    pipe = _pipe_from_environment()
    if pipe is None:
        return
    record = HeartbeatRecord(seq=STANDBY_READY_SEQ, samples=0, dropped=0, rate_hz=0.0,
                             pid=os.getpid(), tid=threading.get_native_id(),
                             sent_ns=time.monotonic_ns())
    try:
        os.write(pipe, record.pack())
    except OSError:
        pass  # the manager is gone or behind; die_with_parent or `go` settles it


def _pipe_from_environment() -> int | None:
    value = os.environ.get(HEARTBEAT_FD_ENV)
    if not value:
        return None
    fd = int(value)
    try:
        os.fstat(fd)
    except OSError:
        return None
    return fd
