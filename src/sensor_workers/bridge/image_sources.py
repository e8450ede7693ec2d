"""Where the bridge takes each camera's frames from: the side channel if it can, else DDS.

A camera on this host writes its frames into a shared-memory side channel (docs/camera.md);
reading it costs the bridge one copy of the frame, against Fast DDS's ~64 KB fragments, their
reassembly and rclpy's conversion on the DDS path. So per camera:

- `side_channel` while the camera's channel file is there with a live writer: a thread of the
  camera's own sleeps on the channel and hands the newest frame to the hub; the DDS
  subscription is destroyed, so DDS stops sending the bridge frames it would throw away;
- `dds` otherwise (no such file: the camera is on another host, or not started; or its writer
  has been dead for `DDS_AFTER_S`, longer than a warm standby takes over): the Image
  subscription.

The Image subscription is raw: Foxglove clients get the serialized message as received. While
one of them subscribes to the camera's topic it stays (or comes back, within CHECK_PERIOD_S)
even on the side channel, whose frames are not CDR; those frames then cross DDS to the bridge
again (over UDP: config/fastdds_udp.xml), for the Foxglove clients only.

Switching happens on a timer of the bridge's node (the executor thread itself creates and
destroys the subscriptions). A side-channel frame and a DDS frame of the same camera are the
same frame: `seq` numbers the frames the bridge received from a camera, by either path.
"""

from collections.abc import Callable
import logging
import threading
import time

from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.serialization import deserialize_message
from rclpy.subscription import Subscription
from sensor_msgs.msg import Image

from sensor_workers.bridge import imaging
from sensor_workers.bridge.foxglove.channels import Channel
from sensor_workers.bridge.foxglove.fanout import FoxgloveFanout
from sensor_workers.bridge.images import ImageStream
from sensor_workers.side_channel.layout import channel_path
from sensor_workers.side_channel.reader import FrameReader, SideFrame
from sensor_workers.stamps import stamp_ns

log = logging.getLogger(__name__)

CHECK_PERIOD_S = 0.5
DDS_AFTER_S = 3.0  # a writer dead this long (or a file gone): back to DDS
WAIT_S = 0.2  # a reader thread's longest sleep, so that it notices a stop


class CameraSource:
    """The frames of one camera, from its side channel or its Image topic."""

    def __init__(self, node: Node, stream: ImageStream, qos: QoSProfile,
                 push: Callable[[str, imaging.Frame], None], side_channel: bool,
                 fanout: FoxgloveFanout, channel: Channel | None) -> None:
        self._node = node
        self._stream = stream
        self._qos = qos
        self._push = push
        self._fanout = fanout
        self._channel = channel
        self._frames = 0
        self._subscription: Subscription | None = None
        self._reader = (FrameReader(channel_path(node.context.get_domain_id(),
                                                 f'/{stream.device}'))
                        if side_channel else None)
        self._live_at = 0.0  # last time the channel had a live writer (monotonic)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._use_dds()

    def check(self) -> None:
        """Switch paths if the side channel came or went (the node's executor thread).

        While the reading thread runs, the reader is its alone: it notes when it last saw a
        live writer, and this only looks at that.
        """
        reader = self._reader
        if reader is not None:
            if self._thread is None:
                if reader.open() and reader.writer_alive():
                    self._live_at = time.monotonic()
                    self._use_side_channel()
            elif time.monotonic() - self._live_at > DDS_AFTER_S:
                self._stop_thread()
                self._use_dds()
        self._subscribe(self._stream.source == 'dds' or self._foxglove_wants())

    def _foxglove_wants(self) -> bool:
        return self._channel is not None and self._fanout.wanted(self._channel)

    def _subscribe(self, wanted: bool) -> None:
        if wanted and self._subscription is None:
            self._subscription = self._node.create_subscription(
                Image, self._stream.topic, self._on_image, self._qos, raw=True)
        elif not wanted and self._subscription is not None:
            self._node.destroy_subscription(self._subscription)
            self._subscription = None

    def close(self) -> None:
        self._stop_thread()
        if self._reader is not None:
            self._reader.close()

    def _use_dds(self) -> None:
        self._stream.source = 'dds'
        self._subscribe(True)
        log.info('%s: frames from %s over DDS', self._stream.device, self._stream.topic)

    def _use_side_channel(self) -> None:
        assert self._reader is not None
        self._stream.source = 'side_channel'
        self._subscribe(self._foxglove_wants())
        self._stop.clear()
        self._thread = threading.Thread(target=self._read_loop, daemon=True,
                                        name=f'side-channel-{self._stream.device}')
        self._thread.start()
        log.info('%s: frames from the side channel %s', self._stream.device, self._reader.path)

    def _stop_thread(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join()

    def _read_loop(self) -> None:
        reader = self._reader
        assert reader is not None
        next_check = 0.0
        while not self._stop.is_set():
            frame = reader.wait(WAIT_S, newest=True)
            if frame is not None:
                self._push_frame(frame)
            now = time.monotonic()
            if now >= next_check:
                next_check = now + CHECK_PERIOD_S
                if reader.open() and reader.writer_alive():
                    self._live_at = now

    def _push_frame(self, frame: SideFrame) -> None:
        self._frames += 1
        self._push(self._stream.device, imaging.Frame(
            seq=self._frames, stamp_ns=frame.stamp_ns, width=frame.width, height=frame.height,
            encoding=frame.encoding, step=frame.step, data=frame.data,
            is_bigendian=frame.is_bigendian))

    def _on_image(self, data: bytes) -> None:
        if self._channel is not None:
            self._fanout.push(self._channel, data)
        if self._stream.source != 'dds':
            return  # on the side channel: kept for Foxglove clients only
        msg = deserialize_message(data, Image)
        self._frames += 1
        self._push(self._stream.device, imaging.Frame(
            seq=self._frames, stamp_ns=stamp_ns(msg.header), width=msg.width, height=msg.height,
            encoding=msg.encoding, step=msg.step, data=msg.data,
            is_bigendian=bool(msg.is_bigendian)))


class ImageSources:
    """A `CameraSource` per camera of the hub, and the timer that lets them switch."""

    def __init__(self, node: Node, streams: dict[str, ImageStream], qos: QoSProfile,
                 push: Callable[[str, imaging.Frame], None], side_channel: bool,
                 fanout: FoxgloveFanout, channels: dict[str, Channel | None]) -> None:
        self.cameras = {name: CameraSource(node, stream, qos, push, side_channel, fanout,
                                           channels.get(name))
                        for name, stream in streams.items()}
        if self.cameras:
            self.check()
            node.create_timer(CHECK_PERIOD_S, self.check)

    def check(self) -> None:
        for source in self.cameras.values():
            source.check()

    def close(self) -> None:
        for source in self.cameras.values():
            source.close()
