"""The asyncio side of the bridge: client registry, fan-out, per-client queues and senders.

The ROS executor thread calls only the `push_*` methods, which never wait: the wrench sample
goes into a bounded deque, the newest image of a camera replaces the previous one (one
`ImageStream` per camera), and the rest is
scheduled with `loop.call_soon_threadsafe`. Everything else runs on the event loop. Encoding
happens once per batch (wrench) or once per camera and distinct image variant, never once per
client, and JPEG encoding runs in a thread per camera so a large frame never holds up a wrench
batch or another camera.
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
import itertools
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from sensor_workers.bridge import imaging
from sensor_workers.bridge.devices import LEVELS, DeviceTable, parse_values
from sensor_workers.bridge.foxglove.fanout import FoxgloveFanout
from sensor_workers.bridge.foxglove.session import Session
from sensor_workers.bridge.images import ImageStream
from sensor_workers.bridge.latency import LatencyWindow
from sensor_workers.bridge.logs import DEFAULT_CLIENT_LEVEL, LogBook, LogLine, level_name
from sensor_workers.bridge.metrics import BridgeMetrics
from sensor_workers.bridge.queues import DropOldestQueue, QueueClosed, RateLimiter
from sensor_workers.bridge.settings import BridgeSettings
from sensor_workers.bridge.wrench import Batch, Sample, WrenchBatcher

if TYPE_CHECKING:  # heartbeat.py imports rclpy; the hub runs without it in tests
    from sensor_workers.heartbeat import HeartbeatRecord

log = logging.getLogger(__name__)

TOPICS = ('wrench', 'image', 'events', 'foxglove')
DEVICE_WATCH_PERIOD_S = 0.1
# /status shows the latency percentiles of this many last seconds.
LATENCY_SPAN_S = 10


def device_of(topic: str, devices: tuple[str, ...]) -> str:
    """Return the device a topic belongs to (`/ft/wrench`: `ft`), else the topic itself."""
    first = topic.strip('/').split('/')[0]
    return first if first in devices else topic


@dataclass
class ImageOptions:
    max_fps: float
    max_width: int
    format: str

    @property
    def variant(self) -> imaging.Variant:
        return imaging.Variant(self.format, self.max_width)


@dataclass
class Client:
    """One websocket connection: one topic, one bounded queue, one sender.

    A Foxglove client has a session instead: its queue holds the JSON answers, and the session
    one queue per subscribed topic.
    """

    id: int
    topic: str
    peer: str
    queue: DropOldestQueue
    connected_at: float
    image: ImageOptions | None = None
    # Image clients: the camera they watch.
    device: str | None = None
    limiter: RateLimiter | None = None
    # Events clients: the lowest log level they get (logs.LEVELS).
    log_level: int = DEFAULT_CLIENT_LEVEL
    session: Session | None = None
    sent: int = 0
    sent_bytes: int = 0

    def status(self, now: float) -> dict[str, Any]:
        status = {
            'id': self.id, 'topic': self.topic, 'peer': self.peer,
            'connected_s': round(now - self.connected_at, 1), 'queue_depth': len(self.queue),
            'queue_capacity': self.queue.capacity, 'sent': self.sent,
            'sent_bytes': self.sent_bytes,
            'dropped': self.queue.total_dropped, 'dropped_by_reason': dict(self.queue.dropped),
        }
        if self.image is not None:
            status.update(device=self.device, max_fps=self.image.max_fps,
                          max_width=self.image.max_width, format=self.image.format)
        if self.topic == 'events':
            status['log_level'] = level_name(self.log_level)
        if self.session is not None:
            status.update(self.session.status())
        return status


class Hub:
    """Fan-out from ROS to websocket clients; owns the metrics and the device table."""

    def __init__(self, settings: BridgeSettings) -> None:
        self.settings = settings
        self.metrics = BridgeMetrics(self._metrics_snapshot)
        self.devices = DeviceTable(settings.devices, settings.heartbeat_timeout_ms / 1000.0,
                                   settings.manager_timeout_ms / 1000.0)
        self.wrench = WrenchBatcher()
        # Age of each message on arrival (now - header stamp); images: per stream.
        self._wrench_latency = LatencyWindow(LATENCY_SPAN_S)
        self.images = {camera: ImageStream(camera, topic, LATENCY_SPAN_S)
                       for camera, topic in settings.camera_topics().items()}
        rate_limited = self.metrics.dropped.labels('log', 'rate_limited')
        self.logs = LogBook((*settings.devices, settings.manager_name),
                            settings.log_lines_per_s, settings.log_burst, settings.log_history,
                            count_drop=rate_limited.inc)
        self.foxglove = FoxgloveFanout(self.metrics)
        self.clients: dict[int, Client] = {}
        self.started_at = time.monotonic()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task] = []
        self._wrench_backlog_reported = 0
        self._events_seen = 0

    # Lifecycle (on the loop)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.foxglove.start(self._loop)
        for stream in self.images.values():
            stream.open()
        self._tasks = [self._loop.create_task(coro) for coro in (
            self._wrench_loop(), self._device_watch(),
            *(self._image_loop(stream) for stream in self.images.values()))]

    async def stop(self) -> None:
        loop, self._loop = self._loop, None
        self.foxglove.stop()
        for client in list(self.clients.values()):
            client.queue.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for stream in self.images.values():
            await (loop or asyncio.get_running_loop()).run_in_executor(None, stream.close)

    # Called from the ROS thread: never wait, never touch loop-owned state directly.

    def push_wrench(self, sample: Sample) -> None:
        self.wrench.push(sample)
        self._wrench_latency.observe((time.time_ns() - sample[0]) / 1e9, time.monotonic())

    def push_image(self, camera: str, frame: imaging.Frame) -> None:
        """Make `frame` the newest of `camera` (one of `settings.cameras`)."""
        stream = self.images[camera]
        stream.push(frame, (time.time_ns() - frame.stamp_ns) / 1e9, time.monotonic())
        self._call_soon(stream.ready.set if stream.ready else None)

    def push_device_states(self, statuses: list[dict[str, Any]]) -> None:
        self._call_soon(self._on_device_states, statuses)

    def push_heartbeat(self, name: str, record: 'HeartbeatRecord', message: str) -> None:
        self._call_soon(self.devices.from_heartbeat, name, record, message, time.monotonic())

    def push_diagnostics(self, name: str, values: dict[str, str]) -> None:
        self._call_soon(self.devices.from_diagnostics, name, values, time.monotonic())

    def push_worker_event(self, status: dict[str, Any]) -> None:
        self._call_soon(self._on_worker_event, status)

    def push_log(self, logger: str, level: int, text: str, stamp_ns: int) -> None:
        if self.logs.node_of(logger) is not None:  # most of /rosout is not ours: skip early
            self._call_soon(self._on_log, logger, level, text, stamp_ns)

    def _call_soon(self, callback: Callable | None, *args: Any) -> None:
        loop = self._loop
        if loop is None or callback is None:
            return
        try:
            loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # loop closed during shutdown
            pass

    # Clients

    def register(self, topic: str, peer: str, image: ImageOptions | None = None,
                 log_level: int = DEFAULT_CLIENT_LEVEL, device: str | None = None,
                 subprotocol: str = '') -> Client | None:
        """Add a client, or return None when `max_clients` are connected.

        Image clients watch `device` (a camera of `images`; default the first); Foxglove
        clients (`subprotocol` negotiated) get a session.
        """
        if len(self.clients) >= self.settings.max_clients:
            self.metrics.rejected.labels('max_clients').inc()
            return None
        if topic == 'wrench':
            queue = DropOldestQueue(self.settings.wrench_queue_batches, 'queue_full')
        elif topic == 'image':
            queue = DropOldestQueue(1, 'superseded')
        else:
            queue = DropOldestQueue(self.settings.events_queue, 'queue_full')
        client = Client(next(self._ids), topic, peer, queue, time.monotonic(), image=image,
                        log_level=log_level)
        if topic == 'foxglove':
            client.session = Session(subprotocol, queue, self.settings.foxglove_queue_messages,
                                     self.settings.foxglove_image_max_fps)
            self.foxglove.add_session(client.id, client.session)
        if image is not None:
            client.device = device or self.settings.default_camera
            client.limiter = RateLimiter(image.max_fps)
        self.clients[client.id] = client
        if topic == 'events':
            self._deliver(client, self._json({'type': 'device_states',
                                              'devices': self.devices.snapshot(time.monotonic())}))
        return client

    def unregister(self, client: Client) -> None:
        client.queue.close()
        self.foxglove.remove_session(client.id)
        self.clients.pop(client.id, None)

    def clients_of(self, topic: str) -> list[Client]:
        return [c for c in self.clients.values() if c.topic == topic]

    def image_clients_of(self, camera: str) -> list[Client]:
        return [c for c in self.clients.values() if c.topic == 'image' and c.device == camera]

    def _deliver(self, client: Client, item: Any, weight: int = 1) -> None:
        dropped = client.queue.put(item, weight)
        if dropped:
            self.metrics.dropped.labels(client.topic, client.queue.reason).inc(dropped)

    async def run_sender(self, client: Client,
                         send_text: Callable[[str], Awaitable[None]],
                         send_bytes: Callable[[bytes], Awaitable[None]]) -> None:
        """Send what the client's queue holds until the queue is closed or a send fails."""
        latency = self.metrics.latency.labels(client.topic)
        sent = self.metrics.sent.labels(client.topic)
        sent_bytes = self.metrics.sent_bytes.labels(client.topic)
        while True:
            try:
                item = await client.queue.get()
            except QueueClosed:
                return
            stamp_ns = 0
            if isinstance(item, Batch):
                text = item.message(client.queue.total_dropped)
                stamp_ns = item.oldest_ns
                await send_text(text)
                size = len(text)
            elif isinstance(item, imaging.Encoded):
                data = item.message(client.queue.total_dropped)
                stamp_ns = item.stamp_ns
                await send_bytes(data)
                size = len(data)
            else:
                await send_text(item)
                size = len(item)
            client.sent += 1
            client.sent_bytes += size
            sent.inc()
            sent_bytes.inc(size)
            if stamp_ns > 0:
                latency.observe(max(0.0, (time.time_ns() - stamp_ns) / 1e9))

    # Fan-out tasks

    async def _wrench_loop(self) -> None:
        period = self.settings.wrench_batch_ms / 1000.0
        received = self.metrics.received.labels('wrench')
        next_due = time.monotonic()
        while True:
            next_due += period
            delay = next_due - time.monotonic()
            if delay < -period:  # the loop was held up: do not try to catch up with a burst
                next_due = time.monotonic()
            await asyncio.sleep(max(0.0, delay))
            batch = self.wrench.take()
            backlog = self.wrench.backlog_dropped
            if backlog > self._wrench_backlog_reported:
                self.metrics.dropped.labels('wrench', 'bridge_backlog').inc(
                    backlog - self._wrench_backlog_reported)
                self._wrench_backlog_reported = backlog
            if batch is None:
                continue
            received.inc(batch.count)
            for client in self.clients_of('wrench'):
                self._deliver(client, batch, batch.count)

    async def _image_loop(self, stream: ImageStream) -> None:
        """Encode the newest frame of one camera once per variant its clients want, and send."""
        assert stream.ready is not None
        received = self.metrics.received.labels('image')
        encoder_busy = self.metrics.dropped.labels('image', 'encoder_busy')
        loop = asyncio.get_running_loop()
        while True:
            await stream.ready.wait()
            stream.ready.clear()
            taken = stream.take()
            if taken is None:
                continue
            frame, new = taken
            received.inc(new)
            if new > 1:
                encoder_busy.inc(new - 1)
            now = time.monotonic()
            wanted: dict[imaging.Variant, list[Client]] = {}
            for client in self.image_clients_of(stream.device):
                image = client.image
                if image is not None and client.limiter is not None and client.limiter.accept(now):
                    wanted.setdefault(image.variant, []).append(client)
            for variant, clients in wanted.items():
                try:
                    if imaging.is_copy(frame, variant):
                        # A plain copy is cheaper than a hand-off to the encoder thread.
                        encoded = imaging.encode(frame, variant)
                    else:
                        encoded = await loop.run_in_executor(
                            stream.encoder, imaging.encode, frame, variant,
                            self.settings.jpeg_quality)
                except ValueError as error:
                    stream.bad_frames += 1
                    if stream.bad_frames == 1 or stream.bad_frames % 100 == 0:
                        log.warning('cannot encode frame %d of %s: %s', frame.seq,
                                    stream.device, error)
                    self.metrics.dropped.labels('image', 'bad_frame').inc()
                    continue
                self.metrics.encoded.labels(variant.format).inc()
                for client in clients:
                    if client.id in self.clients:
                        self._deliver(client, encoded)

    async def _device_watch(self) -> None:
        while True:
            self._publish_device_changes()
            await asyncio.sleep(DEVICE_WATCH_PERIOD_S)

    # Device states and events

    def _on_device_states(self, statuses: list[dict[str, Any]]) -> None:
        self.devices.from_manager(statuses, time.monotonic())
        self._publish_device_changes()

    def _publish_device_changes(self) -> None:
        for record in self.devices.changes(time.monotonic()):
            self._broadcast_event({'type': 'device_state', 'name': record['name'],
                                   'data': record})

    def _on_worker_event(self, status: dict[str, Any]) -> None:
        self._events_seen += 1
        values = parse_values(status.get('values', {}))
        event = {'type': 'event', 'name': status.get('name', ''),
                 'level': LEVELS.get(status.get('level', 0), 'stale'),
                 'message': status.get('message', '')}
        event.update(values)
        event.setdefault('event', '')
        self._broadcast_event(event)

    def _on_log(self, logger: str, level: int, text: str, stamp_ns: int) -> None:
        line: LogLine | None = self.logs.take(logger, level, text, stamp_ns, time.monotonic())
        if line is None:
            return
        clients = [c for c in self.clients_of('events') if line.level_number >= c.log_level]
        if clients:
            message = self._json(line.event())
            for client in clients:
                self._deliver(client, message)

    def _broadcast_event(self, event: dict[str, Any]) -> None:
        text = self._json(event)
        for client in self.clients_of('events'):
            self._deliver(client, text)

    @staticmethod
    def _json(value: Any) -> str:
        return json.dumps(value, separators=(',', ':'))

    # Status

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            'bridge': {
                'uptime_s': round(now - self.started_at, 1),
                'manager_alive': self.devices.manager_alive(now),
                'clients': len(self.clients),
                'max_clients': self.settings.max_clients,
                'wrench_backlog_dropped': self.wrench.backlog_dropped,
                'cameras': list(self.images),
                'image_sources': {name: s.source for name, s in self.images.items()},
                'frames_received': sum(s.frames_in for s in self.images.values()),
                'frames_skipped': sum(s.frames_skipped for s in self.images.values()),
                'bad_frames': sum(s.bad_frames for s in self.images.values()),
                'worker_events': self._events_seen,
                'foxglove_backlog_dropped': self.foxglove.backlog_dropped,
            },
            'devices': self.devices.snapshot(now),
            'latency': self._latency(now),
            'logs': self.logs.status(),
            'clients': [c.status(now) for c in self.clients.values()],
        }

    def _latency(self, now: float) -> dict[str, dict[str, Any]]:
        """Per device: p50/p99 age of its messages on arrival over the last seconds."""
        s = self.settings
        latency = {device_of(s.wrench_topic, s.devices): {
            'topic': s.wrench_topic, **self._wrench_latency.summary(now, LATENCY_SPAN_S)}}
        for camera, stream in self.images.items():
            latency[camera] = {'topic': stream.topic,
                               **stream.latency.summary(now, LATENCY_SPAN_S)}
        return latency

    def _metrics_snapshot(self) -> dict[str, Any]:
        topics = {topic: {'clients': 0, 'queue_depth': 0} for topic in TOPICS}
        for client in list(self.clients.values()):
            topics[client.topic]['clients'] += 1
            topics[client.topic]['queue_depth'] += (
                client.session.depth() if client.session else len(client.queue))
        return {'topics': topics, 'devices': self.devices.snapshot(time.monotonic())}
