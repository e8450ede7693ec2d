"""What the manager publishes of its devices, built from a Device: pure functions, no node.

- `/manager/device_states` and `/diagnostics`: one DiagnosticStatus per device (`device_array`);
  the node republishes the states as soon as a device's `signature` changes.
- `/safety/worker_events`: one DiagnosticStatus per policy event (`event_status`).

Times are passed in, so the messages can be checked without a clock or a ROS graph.
"""

from collections.abc import Iterable

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

from sensor_workers.diagnostics import make_status
from sensor_workers.manager.device import Device
from sensor_workers.manager.liveness import Judgement
from sensor_workers.manager.policy import Event
from sensor_workers.manager.states import ERROR, STATE_LEVELS, WARN, EventKind

# The name of a device's status on /diagnostics: `manager: <device>`.
DIAGNOSTICS_PREFIX = 'manager: '


def signature(devices: Iterable[Device]) -> tuple:
    """Return what `/manager/device_states` says of `devices` that is worth an early update."""
    return tuple(_signature(d) for d in devices)


def _signature(device: Device) -> tuple:
    p = device.policy
    return (p.state, p.restarts, p.failures, p.degraded, p.last_error, device.pid,
            device.standby.state())


def device_status(device: Device, name: str, heartbeat_timeout_ms: int,
                  now_ns: int) -> DiagnosticStatus:
    """Return the status of `device` called `name`; `now_ns` on the monotonic clock."""
    policy = device.policy
    state = policy.state
    level = ERROR if policy.degraded else STATE_LEVELS[state]
    record = device.last_record
    age = -1 if record is None else round((now_ns - record.sent_ns) / 1e6)
    return make_status(name, level, state.value, device.name, {
        'state': state.value,
        'restarts': policy.restarts,
        'failures': policy.failures,
        'heartbeat_age_ms': age,
        # The threshold of this verdict: the bridge judges with it when no manager runs.
        'heartbeat_timeout_ms': heartbeat_timeout_ms,
        'pid': device.pid,
        'rate_hz': record.rate_hz if record else 0.0,
        'samples': record.samples if record else 0,
        'dropped': record.dropped if record else 0,
        'queue_dropped': record.queue_dropped if record else 0,
        'degraded': policy.degraded,
        'backoff_ms': round(policy.backoff_s * 1000),
        'last_error': policy.last_error,
        'standby': device.standby.state(),
    })


def device_array(devices: Iterable[Device], stamp: Time, heartbeat_timeout_ms: int,
                 now_ns: int, prefix: str = '') -> DiagnosticArray:
    """Return the statuses of `devices`, each named `<prefix><device>`, stamped `stamp`."""
    array = DiagnosticArray()
    array.header.stamp = stamp
    array.status = [device_status(d, f'{prefix}{d.name}', heartbeat_timeout_ms, now_ns)
                    for d in devices]
    return array


def event_status(device: Device, event: Event, stamp_ns: int) -> DiagnosticStatus:
    """Return the `/safety/worker_events` message of `event`; `stamp_ns` on the wall clock."""
    return make_status(device.name, event.level, event.message, device.name, {
        'event': event.kind.value,
        'restarts': device.policy.restarts,
        'pid': device.pid,
        'exit_code': '' if event.exit_code is None else event.exit_code,
        'stamp_ns': stamp_ns,
    })


def event_text(device: Device, event: Event) -> str:
    """Return the log line of `event`."""
    return f'{device.name}: {event.kind.value}: {event.message}'


def late_event(judgement: Judgement) -> Event:
    """Return the warning that a worker is silent but not failed yet (a LATE verdict)."""
    return Event(EventKind.HEARTBEAT_LATE, WARN,
                 f'no heartbeat for {judgement.silence_s * 1000:.0f} ms: {judgement.reason}; '
                 'not failed yet')
