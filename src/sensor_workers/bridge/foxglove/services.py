"""The `services` capability: the bridge's Trigger services (restart, tare, recording), in CDR."""

from dataclasses import dataclass
from functools import cache
import struct
from typing import Any

from sensor_workers.bridge.foxglove.schema import service_schemas

TRIGGER = 'std_srvs/srv/Trigger'
CDR_LE = b'\x00\x01\x00\x00'  # encapsulation: plain CDR, little-endian, no options


@dataclass(frozen=True)
class Service:
    id: int
    name: str  # the ROS service, `/ft/tare`
    type: str = TRIGGER

    def advertisement(self) -> dict[str, Any]:
        request, response = _schemas(self.type)
        package, _, name = self.type.split('/')
        return {
            'id': self.id, 'name': self.name, 'type': self.type,
            'request': {'encoding': 'cdr', 'schemaName': f'{package}/srv/{name}_Request',
                        'schemaEncoding': 'ros2msg', 'schema': request},
            'response': {'encoding': 'cdr', 'schemaName': f'{package}/srv/{name}_Response',
                         'schemaEncoding': 'ros2msg', 'schema': response},
            # Read by clients older than `request`/`response` (deprecated in the spec).
            'requestSchema': request, 'responseSchema': response,
        }


@cache
def _schemas(type_name: str) -> tuple[str, str]:
    return service_schemas(type_name)


def trigger_services(devices: tuple[str, ...], cameras: tuple[str, ...], ft_devices: list[str],
                     manager: str) -> list[Service]:
    """Return the services a client may call: restart per device, recording, tare."""
    names = [f'/{manager}/{device}/restart' for device in devices]
    for camera in cameras:
        names += [f'/{camera}/start_recording', f'/{camera}/stop_recording']
    names += [f'/{device}/tare' for device in ft_devices]
    return [Service(index, name) for index, name in enumerate(names, start=1)]


def trigger_response(success: bool, message: str) -> bytes:
    """Serialize a std_srvs/Trigger response (`bool success`, `string message`) as CDR."""
    text = message.encode() + b'\x00'
    # bool at offset 0, then the string length aligned to 4 (offsets after the encapsulation).
    return CDR_LE + struct.pack('<?3xI', success, len(text)) + text
