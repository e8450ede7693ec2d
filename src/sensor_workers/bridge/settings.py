"""The bridge's settings, each written once: default, description and bounds.

`BridgeSettings` is a frozen pydantic model; the bridge node declares one read-only ROS parameter
per field from it (bridge/node.py), with the field's description and its bounds as the ROS range,
so the parameters, their validation and the README's table (generated from the node) cannot
drift apart.
"""

from collections.abc import Iterable
from typing import Any

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.fields import FieldInfo


def setting(default: Any, description: str, limits: tuple[float, float] | None = None) -> Any:
    """Make a field of `BridgeSettings`: pydantic checks `limits` (inclusive), ROS too."""
    if limits is None:
        return Field(default, description=description)
    return Field(default, description=description, ge=limits[0], le=limits[1])


class BridgeSettings(BaseModel):
    """Everything the web side needs to know; docs/bridge.md explains each in context."""

    model_config = ConfigDict(frozen=True)

    host: str = setting('127.0.0.1', 'Address to listen on; 127.0.0.1 keeps it on this host.')
    port: int = setting(8080, 'TCP port (0 = any free port; the URL is logged).', (0, 65535))
    auth_token: str = setting(
        '', "Bearer token required on everything but /health ('' = none).")
    allowed_origins: tuple[str, ...] = setting(
        (), 'Browser origins allowed besides the bridge itself (* = any).')
    max_clients: int = setting(
        32, 'Websocket clients at most, all endpoints together.', (1, 1000))
    image_max_fps: float = setting(
        30.0, 'Upper bound of the frame rate sent to any image client.', (0.1, 1000.0))
    image_max_width: int = setting(
        0, 'Upper bound of the width sent to image clients (0 = full size).', (0, 65535))
    jpeg_quality: int = setting(80, 'JPEG quality 1-100.', (1, 100))
    wrench_batch_ms: int = setting(
        20, 'Period of the wrench batches sent to clients.', (1, 1000))
    wrench_queue_batches: int = setting(
        50, 'Wrench batches queued per client before the oldest is dropped.', (1, 100000))
    events_queue: int = setting(
        256, 'Messages queued per /ws/events client before the oldest is dropped.',
        (1, 100000))
    max_body_bytes: int = setting(
        65536, 'Largest HTTP request body accepted (413 above).', (256, 16 * 1024 * 1024))
    max_ws_message_bytes: int = setting(
        4096, 'Largest websocket message accepted from a client (close 1009 above).',
        (64, 1024 * 1024))
    send_buffer_bytes: int = setting(
        0, 'Kernel send buffer per client socket (0 = autotuned); bounds what a stalled client '
        'holds before its queue starts dropping.', (0, 64 * 1024 * 1024))
    service_timeout_s: float = setting(
        3.0, 'Time a control request waits for a ROS service.', (0.1, 60.0))
    heartbeat_timeout_ms: int = setting(
        300, 'Without a manager (until one published its own threshold): a device whose '
        'heartbeat is older than this is shown as down.', (20, 60000))
    manager_timeout_ms: int = setting(
        2000, 'The manager counts as gone when its device states are older than this; devices '
        'are then shown from their own heartbeats.', (100, 600000))
    devices: tuple[str, ...] = setting(
        ('camera', 'ft'), 'Devices watched (heartbeats) and controllable over HTTP.')
    cameras: tuple[str, ...] = setting(
        ('camera',), 'Cameras served on /ws/image?device=<camera> (default: the first), images '
        'from /<camera>/image_raw.')
    image_topic: str = setting(
        '', "sensor_msgs/Image topic of the first camera ('' = /<camera>/image_raw).")
    image_side_channel: bool = setting(
        True, "Take a camera's frames from its shared-memory side channel when it runs on this "
        'host (else over DDS).')
    wrench_topic: str = setting(
        '/ft/wrench', 'geometry_msgs/WrenchStamped topic served on /ws/wrench.')
    manager_name: str = setting(
        'manager', 'Node name of the manager (states, events, restarts).')
    log_lines_per_s: float = setting(
        20.0, 'Log lines per second per node (manager, workers) passed on to web clients; the '
        'rest is dropped and counted.', (0.1, 10000.0))
    log_burst: int = setting(
        50, 'Log lines a node may send at once above that rate.', (1, 10000))
    log_history: int = setting(50, 'Last log lines kept per node for /status.', (1, 10000))
    foxglove_queue_messages: int = setting(
        1000, 'Messages queued per Foxglove client and topic before the oldest is dropped '
        '(images: the frames of the last 0.25 s, at most 8).', (1, 100000))
    foxglove_image_max_fps: float = setting(
        30.0, 'Frames per second at most per Foxglove client and image topic (raw, '
        'uncompressed frames).', (0.1, 1000.0))

    @field_validator('allowed_origins', 'devices', 'cameras', mode='before')
    @classmethod
    def _drop_empty(cls, value: Iterable[str]) -> tuple[str, ...]:
        # ROS string arrays cannot be empty in YAML without a type, so [''] means none.
        return tuple(v for v in value if v)

    @property
    def default_camera(self) -> str | None:
        """The camera of an image client that names none (None: no camera served)."""
        return self.cameras[0] if self.cameras else None

    def camera_topics(self) -> dict[str, str]:
        """Return each camera's sensor_msgs/Image topic, in the order of `cameras`."""
        topics = {camera: f'/{camera}/image_raw' for camera in self.cameras}
        if self.cameras and self.image_topic:
            topics[self.cameras[0]] = self.image_topic
        return topics


def bounds(field: FieldInfo) -> tuple[Any, Any] | None:
    """Return the inclusive (low, high) a `setting()` was given, or None."""
    low = next((m.ge for m in field.metadata if isinstance(m, annotated_types.Ge)), None)
    high = next((m.le for m in field.metadata if isinstance(m, annotated_types.Le)), None)
    return None if low is None or high is None else (low, high)
