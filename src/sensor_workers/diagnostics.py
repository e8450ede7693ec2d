"""Small builders for diagnostic_msgs (diagnostic_updater is not available as a wheel)."""

from collections.abc import Mapping, Sequence

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

OK = DiagnosticStatus.OK
WARN = DiagnosticStatus.WARN
ERROR = DiagnosticStatus.ERROR


def make_status(
    name: str,
    level: int | bytes,
    message: str,
    hardware_id: str = '',
    values: Mapping[str, object] | None = None,
) -> DiagnosticStatus:
    """Build a DiagnosticStatus; values are stringified in insertion order."""
    status = DiagnosticStatus()
    status.name = name
    status.level = level if isinstance(level, bytes) else bytes([level])
    status.message = message
    status.hardware_id = hardware_id
    status.values = [KeyValue(key=k, value=_format(v)) for k, v in (values or {}).items()]
    return status


def status_values(status: DiagnosticStatus) -> dict[str, str]:
    """Return the key/value pairs of a status as a dict."""
    return {kv.key: kv.value for kv in status.values}


def latest_status(arrays: Sequence[DiagnosticArray], name: str) -> DiagnosticStatus | None:
    """Return the newest status called `name` in `arrays` (oldest first), or None."""
    for array in reversed(arrays):
        for status in array.status:
            if status.name == name:
                return status
    return None


def level_of(status: DiagnosticStatus) -> int:
    """Return the level of a status as an int (rclpy gives a one-byte bytes object)."""
    level = status.level
    return level[0] if isinstance(level, bytes) else int(level)


def _format(value: object) -> str:
    if isinstance(value, float):
        return f'{value:.6g}'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)
