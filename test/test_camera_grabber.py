"""The grab loop's accounting and recovery (camera/grabber.py), on a scripted camera (no pylon)."""

from collections.abc import Callable
import threading

from sensor_workers.camera.basler import CameraError, CameraRemoved, Frame
from sensor_workers.camera.grabber import (
    FAILURES_BEFORE_RECONNECT,
    RECONNECT_PERIOD_S,
    Grabber,
    GrabCounters,
)

WAKE_MS = 50
FRAME_TIMEOUT_S = 1.0


def frame(block_id: int, error: str = '') -> Frame:
    return Frame(None if error else b'\0', 1, 1, 1, 'mono8', 0, block_id, 0, error)


class ScriptedCamera:
    """Answers each grab with the next scripted outcome: a Frame, None, or an exception."""

    serial = 'fake'
    settings = None
    tick_ns = 1.0

    def __init__(self, grabs: list, clock: 'FakeClock', opens: list[bool] | None = None) -> None:
        self.grabs, self.clock, self.opens = grabs, clock, opens or []
        self.closed = 0

    def grab(self, wake_ms: int) -> Frame | None:
        outcome = self.grabs.pop(0)
        if outcome is None:
            self.clock.now += wake_ms / 1000
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def close(self) -> None:
        self.closed += 1

    def open(self, settings: object) -> None:
        if not self.opens.pop(0):
            raise CameraError('not found')

    def start(self) -> None:
        pass


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Events:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def grab_failed(self, error: CameraError) -> None:
        self.seen.append(f'failed: {error}')

    def lost(self, camera: object, reason: str) -> None:
        self.seen.append(f'lost: {reason}')

    def reconnected(self, camera: object) -> None:
        self.seen.append('reconnected')


def grabber_for(camera: ScriptedCamera, clock: FakeClock,
                events: Events) -> tuple[Grabber, GrabCounters, Callable[[], Frame | None]]:
    counters = GrabCounters()
    grabber = Grabber(camera, counters, events, lambda: FRAME_TIMEOUT_S, first_retry_s=0.1,
                      clock=clock)
    stop = threading.Event()
    return grabber, counters, lambda: grabber.step(WAKE_MS, stop)


def test_good_frames_are_returned_and_block_id_gaps_counted():
    clock, events = FakeClock(), Events()
    camera = ScriptedCamera([frame(1), frame(2), frame(5), frame(1)], clock)
    grabber, counters, step = grabber_for(camera, clock, events)
    assert [step().block_id for _ in range(4)] == [1, 2, 5, 1]
    # 3 and 4 never came; the step back to 1 (a new grab start, or a wrap) counts nothing.
    assert counters.camera_skipped == 2
    assert counters.frames_grabbed == 4
    assert grabber.failures == 0 and not events.seen


def test_failed_buffers_and_errors_are_failures_and_a_good_frame_ends_the_run():
    clock, events = FakeClock(), Events()
    camera = ScriptedCamera([frame(1, 'incomplete'), CameraError('buffer'), frame(2)], clock)
    grabber, counters, step = grabber_for(camera, clock, events)
    assert step() is None and step() is None
    assert grabber.failures == 2 and counters.failed_grabs == 2
    assert step().block_id == 2
    assert grabber.failures == 0
    assert events.seen == ['failed: buffer']


def test_silence_longer_than_the_frame_timeout_is_one_failure_per_timeout():
    clock, events = FakeClock(), Events()
    wakes_per_timeout = round(FRAME_TIMEOUT_S * 1000 / WAKE_MS)
    grabs = 2 * wakes_per_timeout + 2  # 20 or 21 empty wakes pass the timeout (float sums)
    camera = ScriptedCamera([None] * grabs, clock)
    grabber, counters, step = grabber_for(camera, clock, events)
    for _ in range(grabs):
        assert step() is None
    assert counters.grab_timeouts == 2 and grabber.failures == 2


def test_a_run_of_failures_loses_the_camera_which_is_reopened_aside():
    clock, events = FakeClock(), Events()
    failed = [frame(n, 'incomplete') for n in range(FAILURES_BEFORE_RECONNECT)]
    camera = ScriptedCamera([*failed, frame(1)], clock, opens=[False, True])
    grabber, counters, step = grabber_for(camera, clock, events)
    for _ in failed:
        step()
    assert grabber.lost and camera.closed == 1
    assert events.seen == [f'lost: {FAILURES_BEFORE_RECONNECT} failed grabs in a row']
    # Due after first_retry_s: the first attempt fails (not found) and is retried later.
    clock.now += 0.1
    step()
    grabber.join()
    assert grabber.lost and grabber.lost_reason == 'not found' and camera.closed == 2
    clock.now += RECONNECT_PERIOD_S
    step()
    grabber.join()
    assert not grabber.lost and counters.reconnects == 1
    assert events.seen[-1] == 'reconnected'
    assert step().block_id == 1


def test_a_removal_loses_the_camera_at_once():
    clock, events = FakeClock(), Events()
    camera = ScriptedCamera([CameraRemoved('unplugged')], clock)
    grabber, counters, step = grabber_for(camera, clock, events)
    assert step() is None
    assert grabber.lost and events.seen == ['lost: unplugged']
    assert counters.failed_grabs == 0
