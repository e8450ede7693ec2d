"""The restart policy of one device: a pure state machine, no ROS, no processes, no clock.

Modelled on supervisor's `Subprocess.transition()`: inputs are events (`exited`, `activated`,
`heartbeat_missed`, ...) and a periodic `transition(now)` tick; outputs are the actions the
process layer must carry out and the safety events to publish. Time is always passed in, so the
tests drive it with a fake clock.

Differences from supervisor: delays grow exponentially up to a cap and fall back to the initial
delay after a stable period; too many failures within a window mark the device `degraded`
(retried at the maximum delay) instead of giving up (FATAL).
"""

from collections import deque
from dataclasses import dataclass

from sensor_workers.manager.states import ERROR, OK, WARN, Action, DeviceState, EventKind


@dataclass(frozen=True)
class PolicyConfig:
    backoff_initial_s: float = 0.02
    backoff_max_s: float = 5.0
    # Active this long without a failure: the next failure starts from the initial delay again.
    backoff_reset_s: float = 10.0
    degraded_after_failures: int = 5
    failure_window_s: float = 30.0
    # Spawned but not active after this long: a failed start.
    start_timeout_s: float = 20.0


@dataclass(frozen=True)
class Event:
    """A safety event for `/safety/worker_events` (the process layer adds pid and stamp)."""

    kind: EventKind
    level: int
    message: str
    exit_code: int | None = None


class RestartPolicy:
    """Supervision state of one device."""

    def __init__(self, config: PolicyConfig) -> None:
        self.config = config
        # Where the device is in its cycle; `state` adds the degraded flag on top.
        self.phase = DeviceState.STOPPED
        self.degraded = False
        # Whether a worker process exists (spawned and not yet reported as exited).
        self.process_running = False
        self.restarts = 0
        self.failures = 0
        self.last_error = ''
        # Delay chosen at the last failure, for /manager/device_states.
        self.backoff_s = 0.0
        # Consecutive failures since the last stable period: the exponent of the delay.
        self._attempts = 0
        self._failure_times: deque[float] = deque()
        self._next_start_at = 0.0
        self._started_at = 0.0
        self._active_since = 0.0
        self._stop_requested = False
        # Set by a failure or a requested restart, cleared on the next activation.
        self._recovering = False
        self._events: list[Event] = []

    @property
    def state(self) -> DeviceState:
        if self.degraded and self.phase in (DeviceState.STARTING, DeviceState.RESTARTING):
            return DeviceState.DEGRADED
        return self.phase

    def drain_events(self) -> list[Event]:
        """Return the events emitted since the last call."""
        events, self._events = self._events, []
        return events

    # Inputs

    def start(self, now: float) -> list[Action]:
        """Start supervising: spawn the worker."""
        if self.phase is not DeviceState.STOPPED or self.process_running:
            return []
        self._stop_requested = False
        return self._spawn(now)

    def activated(self, now: float) -> list[Action]:
        """Report that the worker reached the active lifecycle state."""
        if self.phase is not DeviceState.STARTING:
            return []
        # STARTING -> ACTIVE
        self.phase = DeviceState.ACTIVE
        self._active_since = now
        if self.degraded:
            self.degraded = False
            self._emit(EventKind.RECOVERED, OK, f'active again after {self.restarts} restarts')
        elif self._recovering:
            self._emit(EventKind.RESTARTED, WARN, f'active again (restart {self.restarts})')
        self._recovering = False
        return []

    def exited(self, code: int, now: float) -> list[Action]:
        """Report that the worker process ended with `code` (negative: killed by that signal)."""
        was_running, self.process_running = self.process_running, False
        if not was_running:
            return []
        if self._stop_requested or self.phase is DeviceState.RESTARTING:
            # Stopped or killed on purpose: expected, whatever the code.
            return []
        # STARTING/ACTIVE -> RESTARTING (or degraded)
        return self._fail(now, EventKind.EXITED, f'exited with code {code}', exit_code=code)

    def heartbeat_missed(self, age_s: float, now: float) -> list[Action]:
        if self.phase is not DeviceState.ACTIVE:
            return []
        # ACTIVE -> RESTARTING
        return self._fail(now, EventKind.HEARTBEAT_MISSED,
                          f'no heartbeat for {age_s * 1000:.0f} ms')

    def stalled(self, stalled_s: float, now: float) -> list[Action]:
        if self.phase is not DeviceState.ACTIVE:
            return []
        # ACTIVE -> RESTARTING
        return self._fail(now, EventKind.STALLED,
                          f'samples not advancing for {stalled_s * 1000:.0f} ms')

    def start_failed(self, reason: str, now: float) -> list[Action]:
        """Configure or activate failed, or the worker did not answer in time."""
        if self.phase is not DeviceState.STARTING:
            return []
        # STARTING -> RESTARTING
        return self._fail(now, None, f'start failed: {reason}')

    def spawn_failed(self, reason: str, now: float) -> list[Action]:
        """Report that the worker process could not be started at all."""
        self.process_running = False
        return self.start_failed(f'spawn failed: {reason}', now)

    def request_restart(self, now: float) -> list[Action]:
        """Restart on demand: stop gracefully and start again at once, not counted as failure."""
        if self.phase is DeviceState.STOPPED and not self.process_running:
            self._emit(EventKind.RESTART_REQUESTED, WARN, 'restart requested while stopped')
            return self.start(now)
        self._emit(EventKind.RESTART_REQUESTED, WARN, 'restart requested')
        # * -> RESTARTING, due at once
        self._stop_requested = False
        self.phase = DeviceState.RESTARTING
        self._recovering = True
        self._next_start_at = now
        self.backoff_s = 0.0
        return [Action.STOP] if self.process_running else []

    def request_stop(self, now: float) -> list[Action]:
        """Stop for good (the manager is shutting down)."""
        self._stop_requested = True
        # * -> STOPPED
        self.phase = DeviceState.STOPPED
        return [Action.STOP] if self.process_running else []

    def transition(self, now: float) -> list[Action]:
        """Advance on time alone; call periodically."""
        if self.phase is DeviceState.RESTARTING:
            # RESTARTING -> STARTING once the delay has passed and the old process is gone.
            if now >= self._next_start_at and not self.process_running:
                self.restarts += 1
                return self._spawn(now)
        elif self.phase is DeviceState.STARTING:
            # STARTING -> RESTARTING when the worker takes too long to become active.
            if now - self._started_at > self.config.start_timeout_s:
                return self.start_failed(
                    f'not active within {self.config.start_timeout_s:g} s', now)
        elif self.phase is DeviceState.ACTIVE:
            # Stable for long enough: forget the consecutive failures (backoff back to initial).
            if self._attempts and now - self._active_since >= self.config.backoff_reset_s:
                self._attempts = 0
                self.backoff_s = 0.0
        return []

    # Internals

    def _spawn(self, now: float) -> list[Action]:
        # -> STARTING
        self.phase = DeviceState.STARTING
        self.process_running = True
        self._started_at = now
        return [Action.SPAWN]

    def _fail(
        self, now: float, kind: EventKind | None, reason: str, exit_code: int | None = None
    ) -> list[Action]:
        self.failures += 1
        self.last_error = reason
        self._recovering = True
        if kind is not None:
            self._emit(kind, WARN, reason, exit_code)
        window = self._failure_times
        window.append(now)
        while window and window[0] < now - self.config.failure_window_s:
            window.popleft()
        self._attempts += 1
        newly_degraded = (not self.degraded
                          and len(window) >= self.config.degraded_after_failures)
        self.degraded = self.degraded or newly_degraded
        if self.degraded:
            delay = self.config.backoff_max_s
        else:
            delay = min(self.config.backoff_initial_s * 2 ** (self._attempts - 1),
                        self.config.backoff_max_s)
        self.backoff_s = delay
        self._next_start_at = now + delay
        self.phase = DeviceState.RESTARTING
        if newly_degraded:
            self._emit(EventKind.DEGRADED, ERROR,
                       f'{len(window)} failures within {self.config.failure_window_s:g} s '
                       f'(last: {reason}); retrying every {delay * 1000:.0f} ms')
        else:
            self._emit(EventKind.RESTARTING, ERROR if self.degraded else WARN,
                       f'{reason}; restarting in {delay * 1000:.0f} ms')
        return [Action.KILL] if self.process_running else []

    def _emit(
        self, kind: EventKind, level: int, message: str, exit_code: int | None = None
    ) -> None:
        self._events.append(Event(kind, level, message, exit_code))
