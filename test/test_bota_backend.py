"""The bota_driver wrapper's accounting of the frames the official driver skips (no hardware)."""

from dataclasses import dataclass, field

import pytest

from sensor_workers.ft.backends import bota
from sensor_workers.ft.backends.bota import BotaDriverBackend

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
    monkeypatch.setattr(bota, 'time', fake)
    return fake


def backend_reading(timestamps: list[int], clock: FakeClock) -> BotaDriverBackend:
    backend = BotaDriverBackend('/dev/null', 460800, 64)
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
