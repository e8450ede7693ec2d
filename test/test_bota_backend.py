"""The bota_driver backend, from its parts up to its reader process.

The session's accounting of the frames the official driver skips (a fake driver and clock), the
reader process's records and commands (pipes), and the backend with its reader process against
the simulated sensor (a kill of the reader and the SCHED_FIFO priority included).
"""

from dataclasses import dataclass, field
import os
from pathlib import Path
import sys
import threading
import time

from ft_helpers import fifo_allowed, start_sim
import psutil
import pytest

from sensor_workers.ft.backends import bota_session
from sensor_workers.ft.backends.bota import BotaDriverBackend
from sensor_workers.ft.backends.bota_reader import (
    QUIT,
    START,
    STOP,
    Kind,
    Reader,
    decode_frame,
    encode,
    encode_frame,
    take_records,
)
from sensor_workers.ft.backends.bota_session import COUNTER_NAMES, BotaDriverSession
from sensor_workers.ft.protocol import Frame
from sensor_workers.ft.sim import counter_from_wrench

PERIOD_US = 1250  # sinc 64: 800 Hz


@dataclass
class FakeStatus:
    val: int = 0


@dataclass
class FakeFrame:
    timestamp: int
    status: FakeStatus = field(default_factory=FakeStatus)
    force: tuple = (0.0, 0.0, 0.0)
    torque: tuple = (0.0, 0.0, 0.0)
    temperature: float = 25.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


class FakeDriver:
    """Hands out the frames with the given timestamps, each 0.1 ms after it was asked for."""

    def __init__(self, timestamps: list[int], clock: FakeClock) -> None:
        self.frames = [FakeFrame(t) for t in timestamps]
        self.clock = clock

    def read_frame_blocking(self) -> FakeFrame:
        self.clock.now += 0.0001
        return self.frames.pop(0)

    def get_driver_state(self) -> str:
        return 'BotaDriverState.ACTIVE'


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(bota_session, 'time', fake)
    return fake


def backend_reading(timestamps: list[int], clock: FakeClock) -> BotaDriverSession:
    backend = BotaDriverSession('/dev/null', 460800, 64)
    backend._driver = FakeDriver(timestamps, clock)
    return backend


def test_a_burst_read_in_time_counts_as_skipped_in_bursts(clock):
    backend = backend_reading([0, PERIOD_US, 5 * PERIOD_US], clock)
    for _ in range(3):
        assert backend.read(0.1) is not None
    assert backend.counters()['skipped_in_bursts'] == 3
    assert backend.counters()['skipped_reader_late'] == 0


def test_a_reader_that_came_back_late_counts_as_skipped_reader_late(clock):
    backend = backend_reading([0, 4 * PERIOD_US], clock)
    backend.read(0.1)
    clock.now += 5 * PERIOD_US / 1e6
    backend.read(0.1)
    assert backend.counters()['skipped_reader_late'] == 3
    assert backend.counters()['skipped_in_bursts'] == 0


def test_the_timestamp_wrap_is_no_skip(clock):
    backend = backend_reading([(1 << 32) - PERIOD_US, 0, PERIOD_US], clock)
    for _ in range(3):
        backend.read(0.1)
    counters = backend.counters()
    assert counters['frames'] == 3
    assert counters['skipped_in_bursts'] == counters['skipped_reader_late'] == 0


# The reader process's records and commands

FRAME = Frame(0x12, (1.5, -2.25, 3.0, 0.125, -0.5, 1e-3), 4_000_000_123, 31.5)


def test_a_frame_record_carries_every_value_exactly():
    counters = {name: index * 1_000_000_007 for index, name in enumerate(COUNTER_NAMES)}
    buffer = bytearray(encode_frame(FRAME, 3, counters))
    [(kind, payload)] = take_records(buffer)
    assert kind == Kind.FRAME and not buffer
    assert decode_frame(payload) == (FRAME, 3, counters)


def test_records_are_taken_whole_only():
    stream = encode(Kind.READY) + encode(Kind.ERROR, b'port lost')
    buffer = bytearray(stream[:-3])
    assert take_records(buffer) == [(Kind.READY, b'')]
    buffer += stream[-3:]
    assert take_records(buffer) == [(Kind.ERROR, b'port lost')] and not buffer


class ScriptedSession:
    """Stands in for BotaDriverSession: hands out `frames`, then loses the sensor."""

    def __init__(self, frames: int) -> None:
        self.frames = [Frame(0, (float(n),) * 6, n * 1250, 25.0) for n in range(frames)]
        self.error = ''
        self.generation = 1
        self.started = 0

    def start(self) -> None:
        self.started += 1

    def stop(self) -> None:
        pass

    def read(self, timeout: float) -> Frame | None:
        if self.frames:
            return self.frames.pop(0)
        self.error = 'no new frame for 0.5 s (port lost?)'
        time.sleep(0.001)
        return None

    def counters(self) -> dict[str, int]:
        return dict.fromkeys(COUNTER_NAMES, 0)


def test_the_reader_streams_between_start_and_stop_and_reports_a_loss_once():
    commands_read, commands_write = os.pipe()
    records_read, records_write = os.pipe()
    session = ScriptedSession(frames=5)
    reader = Reader(session, commands_read, records_write)  # type: ignore[arg-type]
    thread = threading.Thread(target=reader.serve)
    thread.start()
    buffer, records = bytearray(), []

    def read_until(kind: Kind) -> None:
        while not records or records[-1][0] != kind:
            buffer.extend(os.read(records_read, 1 << 16))
            records.extend(take_records(buffer))

    try:
        os.write(commands_write, START + bytes([0]))
        read_until(Kind.ERROR)
        os.write(commands_write, STOP)
        read_until(Kind.STOPPED)
        os.write(commands_write, QUIT)
        thread.join(5)
        assert not thread.is_alive(), 'QUIT did not end the reader'
    finally:
        for fd in (commands_read, commands_write, records_read, records_write):
            os.close(fd)
    kinds = [kind for kind, _ in records]
    assert kinds == [Kind.STARTED, *[Kind.FRAME] * 5, Kind.ERROR, Kind.STOPPED]
    assert [decode_frame(p)[0].timestamp_us for k, p in records if k == Kind.FRAME] == \
        [n * 1250 for n in range(5)]
    assert session.started == 1


# A reader that starts streaming, then fails the way a respawned one does when its driver
# cannot be created, and exits.
FAILING_READER = """
import os, sys
from sensor_workers.ft.backends.bota_reader import Kind, encode
records = int(sys.argv[sys.argv.index('--records-fd') + 1])
os.write(records, encode(Kind.READY))
sys.stdin.buffer.read(2)  # START and its priority
os.write(records, encode(Kind.STARTED))
os.write(records, encode(Kind.FAILED, b'no sensor on the port'))
sys.exit(1)
"""


def test_a_reader_that_failed_leaves_its_reason_in_the_error():
    backend = BotaDriverBackend('/dev/null', 460800, 64)
    backend._reader = [sys.executable, '-c', FAILING_READER]
    backend.configure()
    backend.start()
    try:
        assert backend.read(5.0) is None
        assert backend.error == 'the bota_driver reader exited with code 1 (no sensor on the port)'
        assert backend.reader_exits == 1
    finally:
        backend.close()


# The backend and its reader process, against the simulated sensor

@pytest.mark.integration
def test_a_killed_reader_is_replaced_without_stalling_the_worker(procs, tmp_path: Path):
    _, link, _ = start_sim(procs, tmp_path, 64)
    rt_priority = 10 if fifo_allowed() else 0
    backend = BotaDriverBackend(str(link), 460800, 64)
    backend.configure()
    try:
        backend.start(rt_priority)
        reader = psutil.Process(backend._process.pid)  # type: ignore[union-attr]
        first = read_frames(backend, 400)
        assert thread_priorities(reader.pid) == {rt_priority}
        reader.kill()
        # The replacement's driver takes its 3 s constructor; the worker's reads go on meanwhile.
        slowest_read, lost_reported = 0.0, False
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            called = time.monotonic()
            frame = backend.read(0.02)
            slowest_read = max(slowest_read, time.monotonic() - called)
            if frame is None:
                lost_reported |= 'reader exited' in backend.error
            elif backend.counters()['reader_exits']:
                break
        else:
            pytest.fail(f'no frame from a replacement reader in 20 s: {backend.error!r}')
        after = [counter_from_wrench(frame.wrench), *read_frames(backend, 400)]
        counters = backend.counters()
        assert lost_reported and backend.error == '', counters
        assert slowest_read < 0.5, f'a read took {slowest_read:.2f} s while the reader restarted'
        # Each new driver (the replacement's, and any a reader recreated) is a new sensor clock.
        assert backend.generation == 1 + counters['reader_exits'] + counters['recreations'], \
            (backend.generation, counters)
        assert after[0] > first[-1] and all(b > a for a, b in zip(after, after[1:], strict=False))
        assert counters['reader_exits'] == 1 and counters['frames'] >= 800, counters
        replacement = backend._process
        assert replacement is not None
        assert thread_priorities(replacement.pid) == {rt_priority}
        backend.stop()
    finally:
        backend.close()
    assert replacement is not None and replacement.returncode == 0
    assert not reader.is_running()


def thread_priorities(pid: int) -> set[int]:
    """Return the SCHED_FIFO priorities of the threads of `pid` (0: normal scheduling)."""
    return {os.sched_getparam(int(tid)).sched_priority
            for tid in os.listdir(f'/proc/{pid}/task')}


def read_frames(backend: BotaDriverBackend, count: int) -> list[int]:
    """Return the simulator counters of the next `count` frames."""
    seen: list[int] = []
    deadline = time.monotonic() + 10
    while len(seen) < count and time.monotonic() < deadline:
        frame = backend.read(0.1)
        if frame is not None:
            seen.append(counter_from_wrench(frame.wrench))
    assert len(seen) == count, f'{len(seen)} of {count} frames in 10 s: {backend.error!r}'
    return seen
