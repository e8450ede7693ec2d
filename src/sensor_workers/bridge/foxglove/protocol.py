"""Messages of the Foxglove WebSocket protocol: JSON text ops and binary frames, both ways.

`foxglove.websocket.v1` (Lichtblick, @foxglove/ws-protocol) and `foxglove.sdk.v1` (current
Foxglove) name the same messages. Server to client: JSON `serverInfo`, `status`, `advertise`,
`advertiseServices`, `parameterValues`, `serviceCallFailure`; binary Message Data
(`0x01 | u32 subscription id | u64 log time ns | payload`) and Service Call Response
(`0x03 | u32 service id | u32 call id | u32 encoding length | encoding | payload`), all
little-endian. Client to server: JSON `subscribe`, `unsubscribe`, `getParameters`,
`setParameters` and the rest, binary Service Call Request (`0x02`, laid out like the response).
"""

from dataclasses import dataclass
from enum import IntEnum
import json
import struct
from typing import Any

SUBPROTOCOLS = ('foxglove.websocket.v1', 'foxglove.sdk.v1')
MESSAGE_DATA = 0x01
SERVICE_CALL_RESPONSE = 0x03
CLIENT_MESSAGE_DATA = 0x01
SERVICE_CALL_REQUEST = 0x02
_MESSAGE_HEADER = struct.Struct('<BIQ')
_CALL_HEADER = struct.Struct('<BIII')
# Client ops this bridge serves; the others are answered with an error status.
CLIENT_OPS = ('subscribe', 'unsubscribe', 'getParameters', 'setParameters')
MAX_TEXT = 200


class Level(IntEnum):
    INFO = 0
    WARNING = 1
    ERROR = 2


class ProtocolError(ValueError):
    """A client message the protocol does not allow; the text goes back in a status message."""


@dataclass(frozen=True)
class ServiceCall:
    service_id: int
    call_id: int
    encoding: str
    payload: bytes


def dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(',', ':'))


def server_info(name: str, capabilities: list[str], encodings: list[str],
                metadata: dict[str, str], session_id: str) -> str:
    return dumps({'op': 'serverInfo', 'name': name, 'capabilities': capabilities,
                  'supportedEncodings': encodings, 'metadata': metadata,
                  'sessionId': session_id})


def status(level: Level, message: str) -> str:
    return dumps({'op': 'status', 'level': int(level), 'message': message})


def advertise(channels: list[dict[str, Any]]) -> str:
    return dumps({'op': 'advertise', 'channels': channels})


def advertise_services(services: list[dict[str, Any]]) -> str:
    return dumps({'op': 'advertiseServices', 'services': services})


def parameter_values(parameters: list[dict[str, Any]], request_id: str | None) -> str:
    message: dict[str, Any] = {'op': 'parameterValues', 'parameters': parameters}
    if request_id is not None:
        message['id'] = request_id
    return dumps(message)


def service_call_failure(service_id: int, call_id: int, message: str) -> str:
    return dumps({'op': 'serviceCallFailure', 'serviceId': service_id, 'callId': call_id,
                  'message': message})


def message_data(subscription_id: int, log_time_ns: int, payload: bytes) -> bytes:
    return _MESSAGE_HEADER.pack(MESSAGE_DATA, subscription_id, log_time_ns) + payload


def service_call_response(call: ServiceCall, payload: bytes) -> bytes:
    encoding = call.encoding.encode()
    return _CALL_HEADER.pack(SERVICE_CALL_RESPONSE, call.service_id, call.call_id,
                             len(encoding)) + encoding + payload


def parse_text(text: str) -> dict[str, Any]:
    """Return a client's JSON op as a dict with a known `op`; raise ProtocolError."""
    try:
        message = json.loads(text)
    except ValueError:
        raise ProtocolError('malformed JSON') from None
    if not isinstance(message, dict):
        raise ProtocolError('messages must be JSON objects')
    op = message.get('op')
    if op not in CLIENT_OPS:
        raise ProtocolError(f'unsupported op {str(op)[:40]!r}')
    return message


def parse_binary(data: bytes) -> ServiceCall:
    """Return a Service Call Request; raise ProtocolError for anything else."""
    if not data:
        raise ProtocolError('empty binary message')
    if data[0] == CLIENT_MESSAGE_DATA:
        raise ProtocolError('clientPublish is not supported')
    if data[0] != SERVICE_CALL_REQUEST:
        raise ProtocolError(f'unknown binary opcode 0x{data[0]:02x}')
    if len(data) < _CALL_HEADER.size:
        raise ProtocolError('truncated service call request')
    _, service_id, call_id, length = _CALL_HEADER.unpack_from(data)
    end = _CALL_HEADER.size + length
    if len(data) < end:
        raise ProtocolError('truncated service call request')
    try:
        encoding = data[_CALL_HEADER.size:end].decode()
    except UnicodeDecodeError:
        raise ProtocolError('service call encoding is not UTF-8') from None
    return ServiceCall(service_id, call_id, encoding, data[end:])


def id_list(message: dict[str, Any], key: str) -> list[Any]:
    """Return the list under `key`; raise ProtocolError when it is missing or not a list."""
    value = message.get(key)
    if not isinstance(value, list):
        raise ProtocolError(f'{message["op"]}: {key} must be a list')
    return value


def uint32(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 32:
        raise ProtocolError(f'{what} must be an unsigned 32-bit integer')
    return value
