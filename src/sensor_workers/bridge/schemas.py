"""The bridge's HTTP answers as pydantic models, and every error status of the OpenAPI document.

One place for what the document promises: the routes build their bodies through these models
and name their error statuses with `errors(...)`, so the document and the answers cannot drift
apart unnoticed (test_bridge_openapi.py runs schemathesis against a real bridge).
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PROMETHEUS_TEXT = 'text/plain; version=0.0.4; charset=utf-8'


class _Closed(BaseModel):
    """An answer with exactly the documented keys (additionalProperties: false)."""

    model_config = ConfigDict(extra='forbid')


class Error(_Closed):
    """Every refusal of the bridge: a sentence saying what was wrong."""

    detail: str


class ValidationIssue(BaseModel):
    """One problem FastAPI found in a request (malformed JSON, wrong type, missing field)."""

    loc: list[str | int]
    msg: str
    type: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class Unprocessable(_Closed):
    """422: `detail` is the bridge's sentence, or FastAPI's list of issues."""

    detail: str | list[ValidationIssue]


class Health(_Closed):
    status: Literal['ok']


class BridgeStatus(_Closed):
    uptime_s: float
    manager_alive: bool
    clients: int
    max_clients: int
    wrench_backlog_dropped: int
    cameras: list[str] = Field(description='the cameras served on `/ws/image?device=`, the '
                                           'first by default')
    image_sources: dict[str, Literal['dds', 'side_channel']] = Field(
        description="per camera, where its frames come from: 'side_channel' (shared memory, "
                    "same host) or 'dds'")
    frames_received: int = Field(description='all cameras together')
    frames_skipped: int
    bad_frames: int
    worker_events: int
    foxglove_backlog_dropped: int = Field(
        description='messages for Foxglove clients dropped before the event loop took them')


class DeviceRecord(_Closed):
    """One device as /status and /ws/events show it (see docs/bridge.md for the judge)."""

    name: str
    state: str = Field(description='starting, active, restarting, degraded, stopped (manager); '
                                   'active, down, unknown (bridge alone)')
    up: bool
    source: Literal['manager', 'heartbeat', 'none']
    level: str
    heartbeat_age_ms: float | None
    rate_hz: float
    samples: int | None
    dropped: int | None
    pid: int | None
    message: str
    restarts: int
    failures: int
    degraded: bool
    backoff_ms: float
    last_error: str
    standby: str | bool
    manager_heartbeat_age_ms: float | None
    diagnostics: dict[str, Any] = Field(
        description="the worker's own /diagnostics values (camera: recording, recording_path, "
                    'recorded_frames, ...)')
    diagnostics_age_ms: float | None


class FoxgloveChannelStatus(_Closed):
    """One topic a Foxglove client subscribed to: its own queue."""

    subscription: int
    queue_depth: int
    queue_capacity: int
    sent: int
    dropped: int


class ClientStatus(_Closed):
    """One websocket client; image clients also show their options, Foxglove clients their topics.

    A Foxglove client's `queue_depth`, `queue_capacity` and `dropped` sum its answers' queue and
    every topic queue.
    """

    id: int
    topic: Literal['wrench', 'image', 'events', 'foxglove']
    peer: str
    connected_s: float
    queue_depth: int
    queue_capacity: int
    sent: int
    sent_bytes: int
    dropped: int
    dropped_by_reason: dict[str, int]
    device: str | None = Field(None, description='image clients: the camera they watch')
    max_fps: float | None = None
    max_width: int | None = None
    format: Literal['jpeg', 'raw'] | None = None
    log_level: Literal['debug', 'info', 'warn', 'error', 'fatal'] | None = Field(
        None, description='events clients: the lowest level of the log lines they get')
    subprotocol: str | None = Field(None, description='Foxglove clients: the one negotiated')
    channels: dict[str, FoxgloveChannelStatus] | None = Field(
        None, description='Foxglove clients: per subscribed topic')


class Latency(_Closed):
    """Age of a device's messages on arrival at the bridge, over the last `span_s` seconds."""

    topic: str
    p50_ms: float | None
    p99_ms: float | None
    count: int
    span_s: float


class LogLine(_Closed):
    node: str
    level: Literal['debug', 'info', 'warn', 'error', 'fatal']
    text: str
    stamp_ns: int


class NodeLog(_Closed):
    """The last log lines of one node (oldest first) and what its rate limit let through."""

    lines: list[LogLine]
    accepted: int
    dropped: int


class Status(_Closed):
    bridge: BridgeStatus
    devices: dict[str, DeviceRecord]
    latency: dict[str, Latency]
    logs: dict[str, NodeLog]
    clients: list[ClientStatus]


class TriggerAnswer(_Closed):
    """The answer of a std_srvs/Trigger service the request was mapped onto."""

    service: str
    success: bool
    message: str


class TriggerRefused(TriggerAnswer):
    """409: the node answered `success: false`; `detail` is its message."""

    detail: str


class ParameterResult(_Closed):
    successful: bool
    status: Literal['applied', 'refused', 'invalid'] = Field(
        description='refused: by the node (its reason); invalid: by the bridge (undeclared, '
                    'wrong type)')
    reason: str


class ParametersAnswer(_Closed):
    device: str
    results: dict[str, ParameterResult]
    applied: list[str]


class ParametersRefused(ParametersAnswer):
    """409 (the node refused some) or 422 (only the bridge did); `detail` sums up the reasons."""

    detail: str


class RecordingRequest(_Closed):
    action: Literal['start', 'stop']


# status -> (description, body model, response headers); the routes pick theirs with errors().
_ERRORS: dict[int, tuple[str, type[BaseModel], dict[str, Any]]] = {
    400: ('Bad `Content-Length` header', Error, {}),
    401: ('Missing or wrong bearer token', Error, {'WWW-Authenticate': {
        'description': 'Always `Bearer`', 'schema': {'type': 'string', 'const': 'Bearer'}}}),
    403: ('`Origin` neither the bridge itself nor in `allowed_origins`', Error, {}),
    404: ('Unknown device (not in the `devices` parameter)', Error, {}),
    409: ('The node refused (`success: false`)', TriggerRefused, {}),
    413: ('Request body over `max_body_bytes`', Error, {}),
    422: ('Malformed request: bad JSON, wrong shape, unknown field or value', Unprocessable,
          {}),
    503: ('The ROS service did not appear within `service_timeout_s` (worker or manager down)',
          Error, {}),
    504: ('The ROS service did not answer within `service_timeout_s`', Error, {}),
}
ACCESS = (401, 403)
BODY = (400, 413)
SERVICE = (404, 503, 504)


def errors(*codes: int, bodies: dict[int, Any] | None = None) -> dict[int | str, dict[str, Any]]:
    """Return FastAPI `responses=` for these statuses; `bodies` replaces a status's body model."""
    responses: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        description, model, headers = _ERRORS[code]
        entry: dict[str, Any] = {'description': description,
                                 'model': (bodies or {}).get(code, model)}
        if headers:
            entry['headers'] = headers
        responses[code] = entry
    return responses


def name_the_devices(document: dict[str, Any], devices: tuple[str, ...]) -> dict[str, Any]:
    """List the bridge's devices as the values of every `{name}` in the document's paths.

    The routes are declared once for any name; the bridge knows its devices only at start. A
    client (and schemathesis) then sees which names exist, and every other one is a 404.
    """
    for path, operations in document.get('paths', {}).items():
        if '{name}' not in path:
            continue
        for operation in operations.values():
            for parameter in operation.get('parameters', []):
                if parameter['in'] == 'path' and parameter['name'] == 'name':
                    parameter['schema']['enum'] = list(devices)
                    parameter['description'] = 'a device of this bridge; any other name: 404'
    return document
