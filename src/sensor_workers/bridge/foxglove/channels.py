"""The channels of `WS /foxglove`: one per served ROS topic, CDR as received."""

from dataclasses import dataclass
from functools import cached_property
import struct
from typing import Any

# Message types whose frames are latest-only and rate-capped per client.
IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
_STAMP = struct.Struct('<iI')  # after the 4-byte CDR encapsulation header


@dataclass(frozen=True)
class Channel:
    id: int
    topic: str
    schema_name: str  # the ROS type, `geometry_msgs/msg/WrenchStamped`
    schema: str  # ros2msg text with every dependency (schema.message_schema)

    @cached_property
    def image(self) -> bool:
        return self.schema_name in IMAGE_TYPES

    @cached_property
    def stamped(self) -> bool:
        """Whether the message starts with a std_msgs/Header (its stamp: the first field)."""
        for line in self.schema.splitlines():
            words = line.split('#', 1)[0].split()
            if words:
                return words[0] in ('std_msgs/Header', 'Header')
        return False

    @property
    def label(self) -> str:
        """The `topic` label of this channel in /metrics (`foxglove/ft/wrench`)."""
        return f'foxglove{self.topic}'

    def advertisement(self) -> dict[str, Any]:
        return {'id': self.id, 'topic': self.topic, 'encoding': 'cdr',
                'schemaName': self.schema_name, 'schema': self.schema,
                'schemaEncoding': 'ros2msg'}


def header_stamp_ns(payload: bytes) -> int:
    """Return the header stamp of a stamped CDR message in ns (0 if it is too short)."""
    if len(payload) < 4 + _STAMP.size or payload[1] != 1:  # not little-endian CDR
        return 0
    sec, nanosec = _STAMP.unpack_from(payload, 4)
    return sec * 1_000_000_000 + nanosec
