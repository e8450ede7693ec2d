"""Per-client queues that never grow and never block the producer: the oldest entry makes room.

Both sides run on the asyncio loop thread, so no locking is needed; what a drop costs is counted
per reason, so a slow client's losses are visible in /status and /metrics.
"""

import asyncio
from collections import Counter, deque
from collections.abc import Callable
import time
from typing import Any


class DropOldestQueue:
    """A single-consumer queue of at most `capacity` entries; `put()` never waits.

    Each entry has a weight (e.g. the number of samples in a batch) so drops are counted in the
    units the client cares about. With capacity 1 this is a latest-only slot.

    With `stale_after_s`, the queue also empties itself but for the new entry once its oldest
    entry has waited that long (by `clock`): a consumer that is that far behind gets the newest
    entry next, not a backlog, while one that only paused for less keeps every entry.
    """

    def __init__(self, capacity: int, reason: str, stale_after_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if capacity < 1:
            raise ValueError('capacity must be at least 1')
        self.capacity = capacity
        self.reason = reason
        self.stale_after_s = stale_after_s
        self.dropped: Counter[str] = Counter()
        self._clock = clock
        self._items: deque[tuple[Any, int, float]] = deque()
        self._ready = asyncio.Event()
        self._closed = False

    def put(self, item: Any, weight: int = 1) -> int:
        """Append `item`; return the weight dropped to make room (0 if none)."""
        now = 0.0 if self.stale_after_s is None else self._clock()
        dropped = 0
        if self.stale_after_s is not None and self._items \
                and now - self._items[0][2] > self.stale_after_s:
            dropped = sum(entry[1] for entry in self._items)
            self._items.clear()
        while len(self._items) >= self.capacity:
            dropped += self._items.popleft()[1]
        if dropped:
            self.dropped[self.reason] += dropped
        self._items.append((item, weight, now))
        self._ready.set()
        return dropped

    async def get(self) -> Any:
        """Wait for and return the oldest entry; raise `QueueClosed` once closed and empty."""
        while not self._items:
            if self._closed:
                raise QueueClosed
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()[0]

    def peek(self) -> Any:
        """Return the oldest entry without removing it; raise IndexError when empty."""
        return self._items[0][0]

    def pop(self) -> Any:
        """Return the oldest entry without waiting; raise IndexError when empty."""
        return self._items.popleft()[0]

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped.values())


class QueueClosed(Exception):
    """The queue was closed; its consumer should stop."""


class RateLimiter:
    """Decide which messages of a stream go on, at most `max_fps` a second in the long run.

    A token bucket that accepts a message when at least 0.8 tokens are there. For frames it
    holds up to two tokens, so arrival jitter neither loses frames of a source at the limit nor
    halves the rate of one at twice the limit; a larger `capacity` lets bursts through (log
    lines), and `tokens` is what the bucket starts with. A time earlier than the last one (a
    source's clock restarted) starts the clock again there, without new tokens.
    """

    SLACK = 0.2

    def __init__(self, max_fps: float, capacity: float = 2.0, tokens: float = 1.0) -> None:
        self.max_fps = max_fps
        self.capacity = capacity
        self._tokens = tokens
        self._last: float | None = None

    def accept(self, now: float) -> bool:
        if self.max_fps <= 0:
            return True
        if self._last is not None and now > self._last:
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.max_fps)
        self._last = now
        if self._tokens >= 1.0 - self.SLACK:
            self._tokens -= 1.0
            return True
        return False
