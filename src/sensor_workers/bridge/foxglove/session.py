"""One Foxglove client: its subscriptions, a bounded queue per subscribed topic, one sender.

Every subscription has its own drop-oldest queue, so a busy topic can only push out its own
older messages. An image subscription passes at most `image_max_fps` frames a second and keeps
the frames that came while its sender was busy, up to IMAGE_QUEUE_FRAMES and for at most
IMAGE_STALE_AFTER_S: a client that pauses (a TCP hiccup, a busy browser tab) or a burst of frames
the bridge dispatched at once (its loop was late) costs no frame, and a client that stays behind
gets the newest frame next instead of a backlog. JSON answers (advertise, status, parameter
values) wait in a control queue of their own. The sender takes control messages first, then the
oldest message of all its topics, in the order the bridge received them, so a client that cannot
keep up with a 1 kHz wrench still gets its turn of frames (a strict priority for small messages
would starve them).
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sensor_workers.bridge.foxglove.channels import Channel
from sensor_workers.bridge.foxglove.protocol import ProtocolError
from sensor_workers.bridge.queues import DropOldestQueue, RateLimiter

# A 2448x2048 Mono8 frame is 5 MB; frames are shared by the clients that wait for them.
IMAGE_QUEUE_FRAMES = 8
# Frames wait this long at most once newer ones are queued. On the 2-core test machine a
# reading client paused up to 130 ms and the loop dispatched frames in pairs; at the old single
# slot each such pause cost the client frames of a camera well within its bandwidth.
IMAGE_STALE_AFTER_S = 0.25


@dataclass(eq=False)
class Subscription:
    id: int
    channel: Channel
    queue: DropOldestQueue
    limiter: RateLimiter | None = None
    sent: int = 0

    def status(self) -> dict[str, Any]:
        return {'subscription': self.id, 'queue_depth': len(self.queue),
                'queue_capacity': self.queue.capacity, 'sent': self.sent,
                'dropped': self.queue.total_dropped}


@dataclass(frozen=True)
class Frame:
    """A Message Data frame ready to send, with the header stamp it carries (0: none)."""

    data: bytes
    stamp_ns: int
    seq: int  # the order in which the bridge received the messages of all topics


@dataclass(eq=False)
class Session:
    """The queues of one connection; all methods run on the event loop."""

    subprotocol: str
    control: DropOldestQueue
    queue_depth: int
    image_max_fps: float
    subscriptions: dict[int, Subscription] = field(default_factory=dict)
    by_channel: dict[int, Subscription] = field(default_factory=dict)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _closed: bool = False

    def subscribe(self, subscription_id: int, channel: Channel) -> Subscription:
        if subscription_id in self.subscriptions:
            raise ProtocolError(f'subscription id {subscription_id} is already in use')
        if channel.id in self.by_channel:
            raise ProtocolError(f'already subscribed to channel {channel.id} ({channel.topic})')
        if channel.image:
            queue = DropOldestQueue(IMAGE_QUEUE_FRAMES, 'superseded',
                                    stale_after_s=IMAGE_STALE_AFTER_S)
            subscription = Subscription(subscription_id, channel, queue,
                                        RateLimiter(self.image_max_fps))
        else:
            subscription = Subscription(subscription_id, channel,
                                        DropOldestQueue(self.queue_depth, 'queue_full'))
        self.subscriptions[subscription_id] = subscription
        self.by_channel[channel.id] = subscription
        return subscription

    def unsubscribe(self, subscription_id: int) -> Subscription:
        subscription = self.subscriptions.pop(subscription_id, None)
        if subscription is None:
            raise ProtocolError(f'unknown subscription id {subscription_id}')
        del self.by_channel[subscription.channel.id]
        subscription.queue.close()
        return subscription

    def put_control(self, message: str | bytes) -> int:
        """Queue a JSON message or a binary answer (a service call response)."""
        dropped = self.control.put(message)
        self._ready.set()
        return dropped

    def put_frame(self, subscription: Subscription, frame: Frame) -> int:
        dropped = subscription.queue.put(frame)
        self._ready.set()
        return dropped

    def close(self) -> None:
        self._closed = True
        self.control.close()
        self._ready.set()

    def _next(self) -> tuple[Subscription | None, Any] | None:
        if len(self.control):
            return None, self.control.pop()
        ready = [s for s in self.subscriptions.values() if len(s.queue)]
        if not ready:
            return None
        subscription = min(ready, key=lambda s: s.queue.peek().seq)
        return subscription, subscription.queue.pop()

    async def run_sender(self, send_text: Callable[[str], Awaitable[None]],
                         send_bytes: Callable[[bytes], Awaitable[None]],
                         sent: Callable[[Subscription | None, int, int], None]) -> None:
        """Send until closed or a send fails; `sent(subscription, bytes, stamp_ns)` counts."""
        while not self._closed:
            taken = self._next()
            if taken is None:
                self._ready.clear()
                await self._ready.wait()
                continue
            subscription, item = taken
            if subscription is None:
                await (send_bytes(item) if isinstance(item, bytes) else send_text(item))
                sent(None, len(item), 0)
                continue
            await send_bytes(item.data)
            subscription.sent += 1
            sent(subscription, len(item.data), item.stamp_ns)

    def status(self) -> dict[str, Any]:
        """Return the client's part of /status: totals and one entry per subscribed topic."""
        subscriptions = list(self.subscriptions.values())
        dropped: dict[str, int] = dict(self.control.dropped)
        for subscription in subscriptions:
            for reason, count in subscription.queue.dropped.items():
                dropped[reason] = dropped.get(reason, 0) + count
        return {
            'subprotocol': self.subprotocol,
            'queue_depth': len(self.control) + sum(len(s.queue) for s in subscriptions),
            'queue_capacity': self.control.capacity + sum(s.queue.capacity
                                                          for s in subscriptions),
            'dropped': sum(dropped.values()), 'dropped_by_reason': dropped,
            'channels': {s.channel.topic: s.status() for s in subscriptions},
        }

    def depth(self) -> int:
        return len(self.control) + sum(len(s.queue) for s in self.subscriptions.values())
