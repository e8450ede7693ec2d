"""What the bridge knows about each device, from the manager's states and the heartbeats.

The heartbeat age is measured by the bridge itself, so /status says a worker is down even when
no manager runs. Pure logic; times are passed in (monotonic seconds).
"""

from dataclasses import dataclass, field
from typing import Any

LEVELS = {0: 'ok', 1: 'warn', 2: 'error', 3: 'stale'}
_INT_KEYS = ('restarts', 'failures', 'pid', 'samples', 'dropped', 'seq', 'exit_code')
_FLOAT_KEYS = ('rate_hz', 'heartbeat_age_ms', 'backoff_ms')


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
    heartbeat: dict[str, Any] = field(default_factory=dict)
    heartbeat_at: float | None = None


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

    def from_heartbeat(self, name: str, status: dict[str, Any], now: float) -> None:
        device = self._device(name)
        values = parse_values(status.get('values', {}))
        values['level'] = LEVELS.get(status.get('level', 0), 'stale')
        values['message'] = status.get('message', '')
        device.heartbeat, device.heartbeat_at = values, now

    def manager_alive(self, now: float) -> bool:
        return self.manager_seen_at is not None and \
            now - self.manager_seen_at < self.manager_timeout_s

    def known(self, name: str) -> bool:
        return name in self.devices

    def record(self, name: str, now: float) -> dict[str, Any]:
        """Return what /status shows for one device."""
        device = self.devices[name]
        up = device.heartbeat_at is not None and \
            now - device.heartbeat_at < self.heartbeat_timeout_s
        heartbeat_age_ms = None if device.heartbeat_at is None else \
            round((now - device.heartbeat_at) * 1000.0, 1)
        beat = device.heartbeat
        manager_fresh = device.manager_at is not None and self.manager_alive(now)
        if manager_fresh:
            state = device.manager.get('state', 'unknown')
        elif device.heartbeat_at is None:
            state = 'unknown'
        else:
            state = 'active' if up else 'down'
        managed = device.manager if manager_fresh else {}
        return {
            'name': name,
            'state': state,
            'up': up,
            'source': 'manager' if manager_fresh else ('heartbeat' if beat else 'none'),
            'level': managed.get('level', beat.get('level', 'stale') if up else 'stale'),
            'heartbeat_age_ms': heartbeat_age_ms,
            'rate_hz': beat.get('rate_hz', 0.0) if up else 0.0,
            'samples': beat.get('samples', managed.get('samples')),
            'dropped': beat.get('dropped', managed.get('dropped')),
            'pid': beat.get('pid', managed.get('pid')) if up else managed.get('pid'),
            'message': beat.get('message', '') if up else '',
            'restarts': managed.get('restarts', 0),
            'failures': managed.get('failures', 0),
            'degraded': bool(managed.get('degraded', False)) or state == 'degraded',
            'backoff_ms': managed.get('backoff_ms', 0.0),
            'last_error': managed.get('last_error', ''),
            'manager_heartbeat_age_ms': managed.get('heartbeat_age_ms'),
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
