"""Record camera messages into an MCAP file on a thread of its own, never slowing the grab loop.

The file is what rosbag2's MCAP storage writes: profile `ros2`, `ros2msg` schemas, CDR
messages, so `ros2 bag info/play` and Foxglove open it, and `mcap_ros2.reader` reads it back.
The grab loop only hands over references to messages it has already published (no copy); the
recorder serializes and writes them. When the disk falls behind, the bounded queue fills and
new frames are dropped and counted instead of blocking the grab loop.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
import logging
from pathlib import Path
import queue
import threading
import time
from typing import Any, BinaryIO

from mcap.well_known import MessageEncoding, Profile, SchemaEncoding
from mcap.writer import CompressionType, Writer

log = logging.getLogger(__name__)

_SEPARATOR = '=' * 80 + '\n'
_HEADER = (
    'MSG: std_msgs/Header\n'
    'builtin_interfaces/Time stamp\n'
    'string frame_id\n'
    + _SEPARATOR
    + 'MSG: builtin_interfaces/Time\n'
    'int32 sec\n'
    'uint32 nanosec\n'
)
# Message definitions in rosbag2's concatenated form (the main type, then each dependency).
SCHEMAS: dict[str, str] = {
    'sensor_msgs/msg/Image': (
        'std_msgs/Header header\n'
        'uint32 height\n'
        'uint32 width\n'
        'string encoding\n'
        'uint8 is_bigendian\n'
        'uint32 step\n'
        'uint8[] data\n'
        + _SEPARATOR + _HEADER
    ),
    'sensor_msgs/msg/CameraInfo': (
        'std_msgs/Header header\n'
        'uint32 height\n'
        'uint32 width\n'
        'string distortion_model\n'
        'float64[] d\n'
        'float64[9] k\n'
        'float64[9] r\n'
        'float64[12] p\n'
        'uint32 binning_x\n'
        'uint32 binning_y\n'
        'sensor_msgs/RegionOfInterest roi\n'
        + _SEPARATOR + _HEADER + _SEPARATOR
        + 'MSG: sensor_msgs/RegionOfInterest\n'
        'uint32 x_offset\n'
        'uint32 y_offset\n'
        'uint32 height\n'
        'uint32 width\n'
        'bool do_rectify\n'
    ),
}


@dataclass(frozen=True)
class Record:
    """One message to write: topic, ROS type name (a key of SCHEMAS) and the message itself."""

    topic: str
    datatype: str
    message: Any


@dataclass(frozen=True)
class Summary:
    path: Path
    frames: int  # frames (image + camera info) written
    dropped: int  # frames not recorded: queue full or write error


class Recorder:
    """Bounded-queue MCAP writer; `submit()` never blocks."""

    def __init__(self, serialize: Callable[[Any], bytes], queue_size: int = 30) -> None:
        """`serialize` turns a message into CDR bytes (rclpy.serialization.serialize_message)."""
        self._serialize = serialize
        self._queue_size = queue_size
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.path: Path | None = None
        self.frames = 0  # frames written to the current/last file
        self.dropped = 0  # frames not recorded because the queue was full
        self.error = ''

    @property
    def recording(self) -> bool:
        return self._thread is not None

    def start(self, directory: Path | str, prefix: str = 'camera') -> Path:
        """Open a new MCAP file in `directory` and start the writer thread; return the path."""
        with self._lock:
            if self._thread is not None:
                raise RuntimeError(f'already recording to {self.path}')
            directory = Path(directory).expanduser()
            directory.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime('%Y%m%d_%H%M%S')
            path = directory / f'{prefix}_{stamp}.mcap'
            counter = 1
            while path.exists():
                path = directory / f'{prefix}_{stamp}_{counter}.mcap'
                counter += 1
            stream = open(path, 'wb')  # noqa: SIM115 closed by the writer thread
            self.path = path
            self.frames = 0
            self.dropped = 0
            self.error = ''
            self._queue = queue.Queue(maxsize=self._queue_size)
            self._thread = threading.Thread(
                target=self._run, args=(stream, self._queue), name='mcap-recorder', daemon=True)
            self._thread.start()
            return path

    def submit(self, stamp_ns: int, records: Sequence[Record]) -> bool:
        """Queue the records of one frame; return False (and count a drop) when full."""
        pending = self._queue
        if pending is None:
            return False
        try:
            pending.put_nowait((stamp_ns, records))
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def stop(self) -> Summary | None:
        """Write what is queued, close the file and return what was recorded (None if idle)."""
        with self._lock:
            thread, pending = self._thread, self._queue
            if thread is None or pending is None:
                return None
            self._queue = None
            pending.put(None)  # the writer drains everything queued before this
            thread.join()
            self._thread = None
            assert self.path is not None
            return Summary(self.path, self.frames, self.dropped)

    def _run(self, stream: BinaryIO, pending: queue.Queue) -> None:
        writer = Writer(stream, compression=CompressionType.NONE)
        writer.start(profile=Profile.ROS2, library='sensor_workers camera recorder')
        schemas: dict[str, int] = {}
        channels: dict[str, int] = {}
        try:
            while True:
                item = pending.get()
                if item is None:
                    break
                if self.error:
                    self.dropped += 1  # keep draining so that stop() returns
                    continue
                stamp_ns, records = item
                try:
                    for record in records:
                        channel = channels.get(record.topic)
                        if channel is None:
                            schema = schemas.get(record.datatype)
                            if schema is None:
                                schema = writer.register_schema(
                                    record.datatype, SchemaEncoding.ROS2,
                                    SCHEMAS[record.datatype].encode())
                                schemas[record.datatype] = schema
                            channel = writer.register_channel(
                                record.topic, MessageEncoding.CDR, schema)
                            channels[record.topic] = channel
                        writer.add_message(channel, log_time=stamp_ns, publish_time=stamp_ns,
                                           data=self._serialize(record.message),
                                           sequence=self.frames)
                    self.frames += 1
                except OSError as error:
                    self.error = f'writing {self.path} failed: {error}'
                    log.error(self.error)
        finally:
            try:
                writer.finish()
            except OSError as error:
                log.error('closing %s failed: %s', self.path, error)
            stream.close()
