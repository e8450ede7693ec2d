"""The bridge's settings: a validated pydantic model, filled from the node's ROS parameters."""

from pydantic import BaseModel, ConfigDict, Field, field_validator


class BridgeSettings(BaseModel):
    """Everything the web side needs to know; see docs/bridge.md for each field."""

    model_config = ConfigDict(frozen=True)

    host: str = '127.0.0.1'
    port: int = Field(8080, ge=0, le=65535)
    auth_token: str = ''
    allowed_origins: tuple[str, ...] = ()
    max_clients: int = Field(32, ge=1)
    image_max_fps: float = Field(30.0, gt=0)
    image_max_width: int = Field(0, ge=0)
    jpeg_quality: int = Field(80, ge=1, le=100)
    wrench_batch_ms: int = Field(20, ge=1, le=1000)
    wrench_queue_batches: int = Field(50, ge=1)
    events_queue: int = Field(256, ge=1)
    foxglove_queue_messages: int = Field(1000, ge=1)
    foxglove_image_max_fps: float = Field(30.0, gt=0)
    max_body_bytes: int = Field(65536, ge=256)
    max_ws_message_bytes: int = Field(4096, ge=64)
    send_buffer_bytes: int = Field(0, ge=0)
    service_timeout_s: float = Field(3.0, gt=0)
    heartbeat_timeout_ms: int = Field(300, ge=20)  # the manager's default
    manager_timeout_ms: int = Field(2000, ge=100)
    devices: tuple[str, ...] = ('camera', 'ft')
    # The cameras served on /ws/image (`?device=`), the first by default.
    cameras: tuple[str, ...] = ('camera',)
    # The first camera's image topic; '' = /<camera>/image_raw like the others.
    image_topic: str = ''
    # Read a camera on this host from its shared-memory side channel instead of DDS.
    image_side_channel: bool = True
    wrench_topic: str = '/ft/wrench'
    manager_name: str = 'manager'
    log_lines_per_s: float = Field(20.0, gt=0)
    log_burst: int = Field(50, ge=1)
    log_history: int = Field(50, ge=1)

    @field_validator('allowed_origins', 'devices', 'cameras', mode='before')
    @classmethod
    def _drop_empty(cls, value):
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
