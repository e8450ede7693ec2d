"""From the ROS executor thread to the Foxglove sessions: raw CDR in, Message Data frames out.

The executor thread calls only `push()`, which never waits: a message of a topic some client
subscribed to goes into a bounded inbox, and the event loop is woken once for as many messages
as arrive before it runs (a 1 kHz topic is not 1000 `call_soon_threadsafe` a second). On the
loop each message is framed once per distinct subscription id (clients number their
subscriptions alike, so most share one frame) and offered to every subscribed session. Rate
caps judge a message by its header stamp, the source's own cadence (else by when the ROS thread
got it): frames that DDS or a late loop delivered together are not a burst of the source, and
are not held back as one. What a cap holds back is counted (`rate_limited`).
"""

import asyncio
from collections import deque
from dataclasses import dataclass
import itertools
import time
from typing import Any
import uuid

from sensor_workers.bridge.foxglove.channels import Channel, header_stamp_ns
from sensor_workers.bridge.foxglove.distro import ros_distro
from sensor_workers.bridge.foxglove.protocol import ProtocolError, message_data
from sensor_workers.bridge.foxglove.session import Frame, Session
from sensor_workers.bridge.metrics import BridgeMetrics

# Messages waiting for the loop at most; beyond, new ones are dropped (`bridge_backlog`).
INBOX = 4096


@dataclass(frozen=True)
class ChannelMetrics:
    """A channel's labelled metrics, looked up once (`labels()` cost ~15 us per message)."""

    received: Any
    sent: Any
    sent_bytes: Any
    latency: Any
    queue_full: Any
    superseded: Any
    rate_limited: Any

    @classmethod
    def of(cls, metrics: BridgeMetrics, label: str) -> 'ChannelMetrics':
        return cls(metrics.received.labels(label), metrics.sent.labels(label),
                   metrics.sent_bytes.labels(label), metrics.latency.labels(label),
                   metrics.dropped.labels(label, 'queue_full'),
                   metrics.dropped.labels(label, 'superseded'),
                   metrics.dropped.labels(label, 'rate_limited'))

    def dropped(self, reason: str) -> Any:
        return self.superseded if reason == 'superseded' else self.queue_full


class FoxgloveFanout:
    """Channels, sessions and the hand-over from ROS; owned by the hub."""

    def __init__(self, metrics: BridgeMetrics) -> None:
        self.metrics = metrics
        self.channels: dict[int, Channel] = {}
        self.channel_metrics: dict[int, ChannelMetrics] = {}
        # The JSON answers and service responses of all clients.
        self.control_metrics = ChannelMetrics.of(metrics, 'foxglove')
        self.sessions: dict[int, Session] = {}
        # A new id per bridge start: a client that reconnects knows its subscriptions are gone.
        self.session_id = uuid.uuid4().hex
        # Looked up once here: reading the installed distributions took ~1 s on a busy host,
        # too long for the event loop at a client's first connection.
        self.metadata = {'ROS_DISTRO': ros_distro()}
        self.backlog_dropped = 0
        # (channel, payload, wall time ns for the client, monotonic time: unstamped caps)
        self._inbox: deque[tuple[Channel, bytes, int, float]] = deque()
        self._wanted: frozenset[int] = frozenset()
        self._scheduled = False
        self._seq = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None

    def add_channel(self, topic: str, schema_name: str, schema: str) -> Channel:
        """Serve `topic` (before the bridge starts); return its channel."""
        channel = Channel(len(self.channels) + 1, topic, schema_name, schema)
        self.channels[channel.id] = channel
        self.channel_metrics[channel.id] = ChannelMetrics.of(self.metrics, channel.label)
        return channel

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def stop(self) -> None:
        self._loop = None
        for session in self.sessions.values():
            session.close()

    # Called from the ROS thread: never wait.

    def wanted(self, channel: Channel) -> bool:
        """Return whether a client subscribed to `channel` (any thread)."""
        return channel.id in self._wanted

    def push(self, channel: Channel, payload: bytes) -> None:
        """Hand a serialized message of `channel` to the loop if anyone subscribed to it."""
        loop = self._loop
        if loop is None or channel.id not in self._wanted:
            return
        if len(self._inbox) >= INBOX:
            self.backlog_dropped += 1
            self.metrics.dropped.labels(channel.label, 'bridge_backlog').inc()
            return
        self._inbox.append((channel, payload, time.time_ns(), time.monotonic()))
        if not self._scheduled:
            self._scheduled = True
            try:
                loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # loop closed during shutdown
                pass

    # On the loop

    def _drain(self) -> None:
        # Cleared before taking: a message appended after this sees False and schedules again.
        self._scheduled = False
        inbox = self._inbox
        while inbox:
            self._dispatch(*inbox.popleft())

    def _dispatch(self, channel: Channel, payload: bytes, receive_ns: int,
                  received_s: float) -> None:
        metrics = self.channel_metrics[channel.id]
        metrics.received.inc()
        stamp_ns = header_stamp_ns(payload) if channel.stamped else 0
        seq = next(self._seq)
        cadence_s = stamp_ns / 1e9 if stamp_ns > 0 else received_s
        frames: dict[int, Frame] = {}
        for session in self.sessions.values():
            subscription = session.by_channel.get(channel.id)
            if subscription is None:
                continue
            if subscription.limiter is not None and not subscription.limiter.accept(cadence_s):
                metrics.rate_limited.inc()
                continue
            frame = frames.get(subscription.id)
            if frame is None:
                frame = frames[subscription.id] = Frame(
                    message_data(subscription.id, receive_ns, payload), stamp_ns, seq)
            dropped = session.put_frame(subscription, frame)
            if dropped:
                metrics.dropped(subscription.queue.reason).inc(dropped)

    def subscribe(self, session: Session, subscription_id: int, channel_id: int) -> None:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise ProtocolError(f'unknown channel id {channel_id}')
        session.subscribe(subscription_id, channel)
        self._refresh()

    def unsubscribe(self, session: Session, subscription_id: int) -> None:
        session.unsubscribe(subscription_id)
        self._refresh()

    def add_session(self, client_id: int, session: Session) -> None:
        self.sessions[client_id] = session

    def remove_session(self, client_id: int) -> None:
        session = self.sessions.pop(client_id, None)
        if session is not None:
            session.close()
            self._refresh()

    def _refresh(self) -> None:
        """Tell the ROS thread which channels have subscribers (one atomic assignment)."""
        self._wanted = frozenset(cid for session in self.sessions.values()
                                 for cid in session.by_channel)
