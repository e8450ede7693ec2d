"""What the bridge knows about each device, from the manager's states and the heartbeats.

One judge: while a manager publishes, whether a device is up is the manager's verdict (it reads
the worker's heartbeat pipe and its loop thread's state, which the bridge cannot see). Only when
no manager publishes does the bridge judge heartbeat age itself, with the manager's threshold
(the last `heartbeat_timeout_ms` the manager published; the bridge's own setting before any).
Pure logic; times are passed in (monotonic seconds).
"""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sensor_workers.manager.states import DeviceState

if TYPE_CHECKING:  # heartbeat.py imports rclpy
    from sensor_workers.heartbeat import HeartbeatRecord

LEVELS = {0: 'ok', 1: 'warn', 2: 'error', 3: 'stale'}
_INT_KEYS = ('restarts', 'failures', 'pid', 'samples', 'dropped', 'exit_code')
_FLOAT_KEYS = ('rate_hz', 'heartbeat_age_ms', 'backoff_ms', 'heartbeat_timeout_ms')


def parse_values(values: dict[str, str]) -> dict[str, Any]:
    """Turn the string values of a DiagnosticStatus into numbers and booleans where meant."""
    parsed: dict[str, Any] = {}
    for key, text in values.items():
        value: Any = text
        try:
            if key in _INT_KEYS:
                value = int(text)
            elif key in _FLOAT_KEYS or key.endswith('_ns'):
                value = float(text) if not key.endswith('_ns') else int(text)
            elif text in ('true', 'false'):
                value = text == 'true'
        except ValueError:
            pass
        parsed[key] = value
    return parsed


@dataclass
class Device:
    name: str
    manager: dict[str, Any] = field(default_factory=dict)
    manager_at: float | None = None
    heartbeat: 'HeartbeatRecord | None' = None
    heartbeat_message: str = ''
    heartbeat_at: float | None = None
    # The worker's own /diagnostics values (camera: recording state and file, counters).
    diagnostics: dict[str, Any] = field(default_factory=dict)
    diagnostics_at: float | None = None


class DeviceTable:
    """Merge manager states and heartbeats into one record per device."""

    def __init__(self, names: tuple[str, ...], heartbeat_timeout_s: float,
                 manager_timeout_s: float) -> None:
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.manager_timeout_s = manager_timeout_s
        self.devices: dict[str, Device] = {name: Device(name) for name in names}
        self.manager_seen_at: float | None = None
        self._reported: dict[str, tuple] = {}

    def _device(self, name: str) -> Device:
        if name not in self.devices:
            self.devices[name] = Device(name)
        return self.devices[name]

    def from_manager(self, statuses: list[dict[str, Any]], now: float) -> None:
        """Take one /manager/device_states message (statuses as plain dicts)."""
        self.manager_seen_at = now
        for status in statuses:
            device = self._device(status['name'])
            values = parse_values(status.get('values', {}))
            values.setdefault('state', status.get('message', ''))
            values['level'] = LEVELS.get(status.get('level', 0), 'stale')
            device.manager, device.manager_at = values, now

    def from_heartbeat(self, name: str, record: 'HeartbeatRecord', message: str,
                       now: float) -> None:
        device = self._device(name)
        device.heartbeat, device.heartbeat_message, device.heartbeat_at = record, message, now

    def from_diagnostics(self, name: str, values: dict[str, str], now: float) -> None:
        """Take a device's /diagnostics status values; other statuses are not ours."""
        device = self.devices.get(name)
        if device is not None:
            device.diagnostics, device.diagnostics_at = parse_values(values), now

    def heartbeat_timeout(self, device: Device) -> float:
        """Return the manager's threshold for this device if it published one, else ours."""
        published = device.manager.get('heartbeat_timeout_ms')
        return published / 1000.0 if isinstance(published, float) else self.heartbeat_timeout_s

    def manager_alive(self, now: float) -> bool:
        return self.manager_seen_at is not None and \
            now - self.manager_seen_at < self.manager_timeout_s

    def known(self, name: str) -> bool:
        return name in self.devices

    def record(self, name: str, now: float) -> dict[str, Any]:
        """Return what /status shows for one device."""
        device = self.devices[name]
        beat = device.heartbeat
        fresh_beat = beat if device.heartbeat_at is not None and \
            now - device.heartbeat_at < self.heartbeat_timeout(device) else None
        fresh = fresh_beat is not None
        heartbeat_age_ms = None if device.heartbeat_at is None else \
            round((now - device.heartbeat_at) * 1000.0, 1)
        manager_fresh = device.manager_at is not None and self.manager_alive(now)
        managed = device.manager if manager_fresh else {}
        if manager_fresh:
            state = device.manager.get('state', 'unknown')
            up = state == DeviceState.ACTIVE
        else:
            state = 'unknown' if beat is None else (DeviceState.ACTIVE.value if fresh else 'down')
            up = fresh
        # Figures: the worker's own heartbeat while it is fresh (10 Hz), else the manager's.
        samples: int | None
        dropped: int | None
        pid: int | None
        if fresh_beat is not None:
            rate_hz, samples, dropped, pid = (fresh_beat.rate_hz, fresh_beat.samples,
                                              fresh_beat.dropped, fresh_beat.pid)
        else:
            rate_hz = managed.get('rate_hz', 0.0) if up else 0.0
            samples = managed.get('samples', beat.samples if beat else None)
            dropped = managed.get('dropped', beat.dropped if beat else None)
            pid = managed.get('pid')
        return {
            'name': name,
            'state': state,
            'up': up,
            'source': 'manager' if manager_fresh else ('heartbeat' if beat else 'none'),
            'level': managed.get('level',
                                 LEVELS.get(fresh_beat.level, 'stale') if fresh_beat else 'stale'),
            'heartbeat_age_ms': heartbeat_age_ms,
            'rate_hz': rate_hz,
            'samples': samples,
            'dropped': dropped,
            'pid': pid,
            'message': device.heartbeat_message if fresh else '',
            'restarts': managed.get('restarts', 0),
            'failures': managed.get('failures', 0),
            'degraded': bool(managed.get('degraded', False)) or state == 'degraded',
            'backoff_ms': managed.get('backoff_ms', 0.0),
            'last_error': managed.get('last_error', ''),
            'standby': managed.get('standby', ''),
            'manager_heartbeat_age_ms': managed.get('heartbeat_age_ms'),
            'diagnostics': device.diagnostics,
            'diagnostics_age_ms': None if device.diagnostics_at is None else
            round((now - device.diagnostics_at) * 1000.0, 1),
        }

    def snapshot(self, now: float) -> dict[str, dict[str, Any]]:
        return {name: self.record(name, now) for name in sorted(self.devices)}

    def changes(self, now: float) -> list[dict[str, Any]]:
        """Return the records whose state, liveness, level, restarts or degraded flag changed."""
        changed = []
        for name in sorted(self.devices):
            record = self.record(name, now)
            key = (record['state'], record['up'], record['level'], record['restarts'],
                   record['degraded'], record['last_error'])
            if self._reported.get(name) != key:
                self._reported[name] = key
                changed.append(record)
        return changed
