"""Wrench batches for `/ws/wrench`: the samples are encoded once per batch, not per client."""

from collections import deque
from dataclasses import dataclass
import json

# t_ns, fx, fy, fz, tx, ty, tz
Sample = tuple[int, float, float, float, float, float, float]


@dataclass(frozen=True)
class Batch:
    """One batch of samples, encoded once and shared by every client."""

    seq: int
    count: int
    oldest_ns: int
    newest_ns: int
    samples_json: str

    def message(self, dropped: int) -> str:
        """Return the text message for a client that has lost `dropped` samples so far."""
        return (f'{{"seq":{self.seq},"dropped":{dropped},"count":{self.count},'
                f'"samples":{self.samples_json}}}')


class WrenchBatcher:
    """Collect samples handed over by the ROS thread and cut them into batches on the loop.

    `push()` is the only method the ROS thread calls: a deque append, atomic under the GIL, so
    the ROS callback never waits for the loop. The deque is bounded; if the loop falls behind by
    more than `backlog` samples the oldest are lost and counted in `backlog_dropped`.
    """

    def __init__(self, backlog: int = 100_000) -> None:
        self._pending: deque[Sample] = deque(maxlen=backlog)
        self._pushed = 0
        self._taken = 0
        self._seq = 0

    def push(self, sample: Sample) -> None:
        self._pending.append(sample)
        self._pushed += 1

    @property
    def backlog_dropped(self) -> int:
        return max(0, self._pushed - self._taken - len(self._pending))

    def take(self) -> Batch | None:
        """Take every pending sample as one batch (None when there is none)."""
        samples = []
        pending = self._pending
        while pending:
            samples.append(pending.popleft())
        if not samples:
            return None
        self._taken += len(samples)
        self._seq += 1
        return Batch(
            seq=self._seq, count=len(samples), oldest_ns=samples[0][0],
            newest_ns=samples[-1][0],
            samples_json=json.dumps(samples, separators=(',', ':')))
