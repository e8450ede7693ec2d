"""The manager's liveness judge, fake clock: hung, blocked, starved, stalled, a late manager."""

import pytest

from sensor_workers.manager.liveness import (
    CLOCK_TICKS,
    Liveness,
    LivenessConfig,
    ThreadSample,
    Verdict,
    parse_thread_stat,
)

CONFIG = LivenessConfig(heartbeat_timeout_s=0.3, stall_timeout_s=2.0, grace_s=2.0,
                        first_beat_grace_s=1.0)
SLEEPING = ThreadSample('S', 100)
STOPPED = ThreadSample('T', 100)


def beating(until: float, start: float = 0.0, period: float = 0.1) -> Liveness:
    """Return the judge of a worker that beat every `period` from `start` to `until`."""
    liveness = Liveness(CONFIG, active_at=start)
    t, samples = start, 0
    while t <= until + 1e-9:
        samples += 100
        liveness.beat(t, samples, tid=42)
        t += period
    return liveness


def test_regular_beats_are_ok():
    liveness = beating(until=5.0)
    judgement = liveness.judge(5.05, 0.0, SLEEPING)
    assert judgement.verdict is Verdict.OK
    assert judgement.silence_s == pytest.approx(0.05)
    assert liveness.loop_tid == 42


def test_a_stopped_process_is_missed_at_the_timeout():
    liveness = beating(until=5.0)
    assert liveness.judge(5.29, 0.0, STOPPED).verdict is Verdict.OK
    judgement = liveness.judge(5.31, 0.0, STOPPED)
    assert judgement.verdict is Verdict.MISSED
    assert judgement.reason == 'process stopped'


@pytest.mark.parametrize('thread', [None, ThreadSample('Z', 0), ThreadSample('', 0)])
def test_a_gone_loop_thread_is_missed_at_the_timeout(thread):
    liveness = beating(until=5.0)
    assert liveness.judge(5.31, 0.0, thread).verdict is Verdict.MISSED


def test_a_blocked_loop_is_late_until_the_grace_then_missed():
    liveness = beating(until=5.0)
    late = liveness.judge(5.5, 0.0, SLEEPING)
    assert late.verdict is Verdict.LATE
    assert 'blocked' in late.reason
    assert liveness.judge(6.9, 0.0, SLEEPING).verdict is Verdict.LATE
    assert liveness.judge(7.01, 0.0, SLEEPING).verdict is Verdict.MISSED


def test_a_blocked_loop_that_beats_again_is_ok():
    liveness = beating(until=5.0)
    assert liveness.judge(5.9, 0.0, SLEEPING).verdict is Verdict.LATE
    liveness.beat(5.95, 1_000_000, tid=42)
    assert liveness.judge(6.0, 0.0, SLEEPING).verdict is Verdict.OK


def test_a_starved_loop_is_late_but_a_busy_silent_one_is_missed():
    starved = beating(until=5.0)
    assert starved.judge(5.4, 0.0, ThreadSample('R', 500)).verdict is Verdict.LATE
    judgement = starved.judge(5.6, 0.0, ThreadSample('R', 500))
    assert judgement.verdict is Verdict.LATE
    assert 'starved' in judgement.reason
    busy = beating(until=5.0)
    assert busy.judge(5.4, 0.0, ThreadSample('R', 500)).verdict is Verdict.LATE
    judgement = busy.judge(5.6, 0.0, ThreadSample('R', 500 + round(0.2 * CLOCK_TICKS)))
    assert judgement.verdict is Verdict.MISSED
    assert 'busy' in judgement.reason


def test_a_late_manager_judges_nothing_and_late_read_beats_count_by_send_time():
    liveness = beating(until=5.0)
    # The manager slept 2 s; the worker's beats of that time are in the pipe, not read yet.
    assert liveness.judge(7.0, 1.98, STOPPED).verdict is Verdict.MANAGER_LATE
    for i in range(1, 21):
        liveness.beat(5.0 + i * 0.1, 10_000 + i, tid=42)
    assert liveness.judge(7.02, 0.0, STOPPED).verdict is Verdict.OK


def test_the_first_beat_gets_a_grace():
    liveness = Liveness(CONFIG, active_at=10.0)
    assert liveness.judge(11.2, 0.0, STOPPED).verdict is Verdict.OK
    assert liveness.judge(11.31, 0.0, STOPPED).verdict is Verdict.MISSED


def test_samples_that_stop_advancing_are_a_stall():
    liveness = beating(until=5.0)
    for i in range(1, 30):
        liveness.beat(5.0 + i * 0.1, 5100, tid=42)  # beats go on, samples do not
    # The last change was the beat at 5.0 (samples 5100).
    assert liveness.judge(6.9, 0.0, SLEEPING).verdict is Verdict.OK
    judgement = liveness.judge(7.1, 0.0, SLEEPING)
    assert judgement.verdict is Verdict.STALLED
    assert judgement.silence_s == pytest.approx(2.1)


def test_older_records_are_ignored():
    liveness = beating(until=5.0)
    liveness.beat(1.0, 7, tid=1)
    assert liveness.last_sent == pytest.approx(5.0)
    assert liveness.loop_tid == 42


def test_parse_thread_stat_with_spaces_in_the_name():
    text = ('1234 (ft read) loop) S 1 1234 1234 0 -1 4194560 100 0 0 0 '
            '250 17 0 0 20 0 16 0 12345 1000000 2000 18446744073709551615')
    sample = parse_thread_stat(text)
    assert sample == ThreadSample('S', 267)


def test_a_blocked_loop_names_the_kernel_function_it_waits_in():
    text = '1234 (ft) D 1 1234 1234 0 -1 4194560 100 0 0 0 250 17 0 0 20 0 16 0 1 1 1 1'
    assert parse_thread_stat(text, '0').wait_channel == ''  # waiting in none
    blocked = parse_thread_stat(text, 'rwsem_down_read_slowpath')
    liveness = beating(until=5.0)
    assert liveness.judge(5.5, 0.0, blocked).reason == (
        'loop thread blocked (state D in rwsem_down_read_slowpath)')
    assert liveness.judge(7.5, 0.0, blocked).reason == (
        'loop silent, thread state D in rwsem_down_read_slowpath')


def test_a_starved_loop_that_runs_now_and_then_is_not_busy():
    # Runnable under a heavy load, it gets a few ticks: 10% of its silence is not spinning.
    liveness = beating(until=5.0)
    assert liveness.judge(5.4, 0.0, ThreadSample('R', 500)).verdict is Verdict.LATE
    few = 500 + round(0.1 * 0.5 * CLOCK_TICKS)
    judgement = liveness.judge(5.9, 0.0, ThreadSample('R', few))
    assert judgement.verdict is Verdict.LATE
    assert 'starved' in judgement.reason
