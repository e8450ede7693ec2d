"""Device states and supervision events of the manager (stdlib only, like supervisor/states.py).

The string values are part of the public contract: they appear verbatim in
`/manager/device_states` (status `message`, value `state`) and `/safety/worker_events`
(value `event`), which the bridge consumes.
"""

from enum import StrEnum


class DeviceState(StrEnum):
    """What the manager says about one device."""

    # The worker process is (re)spawned and being driven configure -> activate.
    STARTING = 'starting'
    # The worker is active and its heartbeat advances.
    ACTIVE = 'active'
    # A failure was seen; the rest of the process is being killed and a restart is scheduled.
    RESTARTING = 'restarting'
    # Too many failures within the failure window: retried only at the maximum backoff.
    DEGRADED = 'degraded'
    # Stopped on request (manager shutting down); not restarted.
    STOPPED = 'stopped'


class EventKind(StrEnum):
    """The `event` value of a `/safety/worker_events` message."""

    HEARTBEAT_MISSED = 'heartbeat_missed'
    # Silent past the timeout while its loop thread is blocked or starved: a warning, no restart.
    HEARTBEAT_LATE = 'heartbeat_late'
    STALLED = 'stalled'
    EXITED = 'exited'
    RESTARTING = 'restarting'
    RESTARTED = 'restarted'
    DEGRADED = 'degraded'
    RECOVERED = 'recovered'
    RESTART_REQUESTED = 'restart_requested'


class Action(StrEnum):
    """What the policy asks the process layer to do."""

    # Start a fresh worker process and drive it configure -> activate.
    SPAWN = 'spawn'
    # Kill what is left of the worker at once (SIGTERM, then SIGKILL after a short grace).
    KILL = 'kill'
    # Stop the worker gracefully (deactivate, SIGTERM, then SIGKILL after the stop timeout).
    STOP = 'stop'


# Diagnostic levels of diagnostic_msgs/DiagnosticStatus, without importing ROS.
OK = 0
WARN = 1
ERROR = 2

STATE_LEVELS = {
    DeviceState.STARTING: OK,
    DeviceState.ACTIVE: OK,
    DeviceState.RESTARTING: WARN,
    DeviceState.DEGRADED: ERROR,
    DeviceState.STOPPED: OK,
}
