"""The restart policy alone, driven by a fake clock: no ROS, no processes."""

import pytest

from sensor_workers.manager.policy import PolicyConfig, RestartPolicy
from sensor_workers.manager.states import ERROR, OK, WARN, Action, DeviceState, EventKind

CONFIG = PolicyConfig(backoff_initial_s=0.1, backoff_max_s=1.6, backoff_reset_s=10.0,
                      degraded_after_failures=4, failure_window_s=30.0, start_timeout_s=5.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def active_policy(clock: Clock) -> RestartPolicy:
    policy = RestartPolicy(CONFIG)
    assert policy.start(clock.now) == [Action.SPAWN]
    assert policy.state is DeviceState.STARTING
    policy.activated(clock.advance(0.5))
    assert policy.state is DeviceState.ACTIVE
    assert policy.drain_events() == []
    return policy


def crash_and_restart(policy: RestartPolicy, clock: Clock) -> float:
    """Kill the worker, wait for the respawn; return the delay that was applied."""
    policy.exited(-9, clock.now)
    delay = policy.backoff_s
    assert policy.transition(clock.advance(delay - 0.01)) == []
    assert policy.transition(clock.advance(0.011)) == [Action.SPAWN]
    return delay


def test_exit_while_active_restarts_after_initial_delay(clock):
    policy = active_policy(clock)
    assert policy.exited(-9, clock.now) == []  # already dead: nothing to kill
    assert policy.state is DeviceState.RESTARTING
    events = policy.drain_events()
    assert [(e.kind, e.level) for e in events] == [
        (EventKind.EXITED, WARN), (EventKind.RESTARTING, WARN)]
    assert events[0].exit_code == -9
    assert policy.transition(clock.advance(0.09)) == []
    assert policy.transition(clock.advance(0.011)) == [Action.SPAWN]
    assert policy.state is DeviceState.STARTING
    assert policy.restarts == 1
    policy.activated(clock.advance(0.4))
    assert policy.state is DeviceState.ACTIVE
    assert [(e.kind, e.level) for e in policy.drain_events()] == [(EventKind.RESTARTED, WARN)]
    assert policy.failures == 1
    assert policy.last_error == 'exited with code -9'


def test_backoff_grows_exponentially_up_to_the_cap(clock):
    policy = RestartPolicy(PolicyConfig(backoff_initial_s=0.1, backoff_max_s=0.5,
                                              degraded_after_failures=100))
    policy.start(clock.now)
    delays = []
    for _ in range(5):
        policy.activated(clock.advance(0.2))
        delays.append(crash_and_restart(policy, clock))
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])


def test_backoff_resets_after_a_stable_period(clock):
    policy = active_policy(clock)
    assert crash_and_restart(policy, clock) == pytest.approx(0.1)
    policy.activated(clock.advance(0.3))
    assert crash_and_restart(policy, clock) == pytest.approx(0.2)
    policy.activated(clock.advance(0.3))
    policy.transition(clock.advance(CONFIG.backoff_reset_s))
    assert crash_and_restart(policy, clock) == pytest.approx(0.1)


def test_heartbeat_miss_kills_the_rest_and_waits_for_its_exit(clock):
    policy = active_policy(clock)
    assert policy.heartbeat_missed(0.31, clock.now) == [Action.KILL]
    events = policy.drain_events()
    assert events[0].kind is EventKind.HEARTBEAT_MISSED
    assert events[0].message == 'no heartbeat for 310 ms'
    # The delay has passed but the killed process has not exited yet: no second process.
    assert policy.transition(clock.advance(1.0)) == []
    assert policy.exited(-9, clock.now) == []
    assert policy.drain_events() == []  # a process we killed ending is no news
    assert policy.transition(clock.now) == [Action.SPAWN]


def test_stall_is_a_failure(clock):
    policy = active_policy(clock)
    assert policy.stalled(1.0, clock.now) == [Action.KILL]
    assert policy.drain_events()[0].kind is EventKind.STALLED
    assert policy.state is DeviceState.RESTARTING


def test_heartbeat_and_stall_are_ignored_unless_active(clock):
    policy = RestartPolicy(CONFIG)
    policy.start(clock.now)
    assert policy.heartbeat_missed(1.0, clock.now) == []
    assert policy.stalled(1.0, clock.now) == []
    assert policy.state is DeviceState.STARTING


def test_failed_start_then_degraded_then_retried_at_max_backoff(clock):
    policy = RestartPolicy(CONFIG)
    policy.start(clock.now)
    delays = []
    for _ in range(CONFIG.degraded_after_failures):
        assert policy.start_failed('configure failed: no such port', clock.advance(0.2)) == [
            Action.KILL]
        delays.append(policy.backoff_s)
        policy.exited(-15, clock.now)
        clock.advance(policy.backoff_s)
        assert policy.transition(clock.now) == [Action.SPAWN]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 1.6])
    assert policy.degraded
    assert policy.state is DeviceState.DEGRADED  # also while its retry is starting
    events = policy.drain_events()
    assert [e.kind for e in events] == [EventKind.RESTARTING] * 3 + [EventKind.DEGRADED]
    assert events[-1].level == ERROR
    # Further failures: still degraded, max backoff, ERROR.
    policy.start_failed('configure failed: no such port', clock.advance(0.2))
    assert policy.backoff_s == pytest.approx(CONFIG.backoff_max_s)
    assert [(e.kind, e.level) for e in policy.drain_events()] == [(EventKind.RESTARTING, ERROR)]
    policy.exited(-15, clock.now)
    policy.transition(clock.advance(CONFIG.backoff_max_s))
    # The device works again: recovered.
    policy.activated(clock.advance(0.5))
    assert policy.state is DeviceState.ACTIVE
    assert not policy.degraded
    assert [(e.kind, e.level) for e in policy.drain_events()] == [(EventKind.RECOVERED, OK)]


def test_failures_outside_the_window_do_not_degrade(clock):
    policy = active_policy(clock)
    for _ in range(10):
        crash_and_restart(policy, clock)
        policy.activated(clock.advance(0.5))
        # Long enough apart that never 4 fall within 30 s.
        policy.transition(clock.advance(11.0))
    assert not policy.degraded
    assert policy.failures == 10


def test_start_timeout(clock):
    policy = RestartPolicy(CONFIG)
    policy.start(clock.now)
    assert policy.transition(clock.advance(CONFIG.start_timeout_s)) == []
    assert policy.transition(clock.advance(0.1)) == [Action.KILL]
    assert 'not active within 5 s' in policy.last_error


def test_exit_zero_after_requested_stop_is_not_a_crash(clock):
    policy = active_policy(clock)
    assert policy.request_stop(clock.now) == [Action.STOP]
    assert policy.exited(0, clock.advance(0.2)) == []
    assert policy.state is DeviceState.STOPPED
    assert policy.failures == 0
    assert policy.drain_events() == []
    assert policy.transition(clock.advance(100)) == []


def test_exit_zero_without_request_is_a_failure(clock):
    policy = active_policy(clock)
    policy.exited(0, clock.now)
    assert policy.failures == 1
    assert policy.state is DeviceState.RESTARTING


def test_requested_restart_is_immediate_and_not_a_failure(clock):
    policy = active_policy(clock)
    assert policy.request_restart(clock.now) == [Action.STOP]
    assert policy.drain_events()[0].kind is EventKind.RESTART_REQUESTED
    assert policy.transition(clock.now) == []  # the old process is still there
    policy.exited(0, clock.advance(0.1))
    assert policy.transition(clock.now) == [Action.SPAWN]
    policy.activated(clock.advance(0.4))
    assert policy.failures == 0
    assert policy.restarts == 1
    assert [e.kind for e in policy.drain_events()] == [EventKind.RESTARTED]
