"""The `parameters` capability: Foxglove names and values of the devices' ROS parameters.

A parameter is named `/<device>.<name>` (`/camera.frame_rate`), as foxglove_bridge names ROS 2
parameters. Doubles carry `type: float64` so that 30.0 stays a double in the client.
"""

import base64
from typing import Any

from rcl_interfaces.msg import ParameterType

from sensor_workers.bridge.foxglove.protocol import ProtocolError


def split_name(name: Any, devices: tuple[str, ...]) -> tuple[str, str]:
    """Return (device, parameter) of `/<device>.<parameter>`; raise ProtocolError."""
    if not isinstance(name, str) or not name.startswith('/') or '.' not in name:
        raise ProtocolError(f'parameter names are /<device>.<name>, not {str(name)[:64]!r}')
    device, _, parameter = name[1:].partition('.')
    if device not in devices:
        raise ProtocolError(f'unknown device {device[:64]!r} in {name[:64]!r}; '
                            f'known: {", ".join(devices)}')
    return device, parameter


def full_name(device: str, parameter: str) -> str:
    return f'/{device}.{parameter}'


def to_foxglove(name: str, declared: int, value: Any) -> dict[str, Any] | None:
    """Return the protocol's Parameter for a ROS value (None: not set)."""
    if declared == ParameterType.PARAMETER_NOT_SET:
        return None
    if declared == ParameterType.PARAMETER_DOUBLE:
        return {'name': name, 'value': float(value), 'type': 'float64'}
    if declared == ParameterType.PARAMETER_DOUBLE_ARRAY:
        return {'name': name, 'value': [float(v) for v in value], 'type': 'float64_array'}
    if declared == ParameterType.PARAMETER_BYTE_ARRAY:
        return {'name': name, 'value': base64.b64encode(bytes(value)).decode(),
                'type': 'byte_array'}
    if isinstance(value, (list, tuple)) or hasattr(value, 'tolist'):
        return {'name': name, 'value': list(value)}
    return {'name': name, 'value': value}


def from_foxglove(parameter: Any) -> tuple[str, Any]:
    """Return (name, JSON value) of a client's Parameter; raise ProtocolError."""
    if not isinstance(parameter, dict) or 'name' not in parameter:
        raise ProtocolError('setParameters: each parameter is an object with a name')
    if parameter.get('type') == 'byte_array':
        raise ProtocolError(f'{str(parameter["name"])[:64]}: byte arrays cannot be set here')
    return parameter['name'], parameter.get('value')
