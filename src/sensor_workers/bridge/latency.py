"""Latency percentiles over the last seconds, in bounded memory, for /status and the dashboard.

The age of each message when the bridge receives it (now minus its header stamp) goes into a
histogram of the current second; the histograms of the last `window_s` seconds are kept, so
p50/p99 over any recent span cost a sum of a few hundred small integer arrays and memory does
not grow with the rate (1 kHz wrench samples cost what 30 fps frames cost). The bins are
logarithmic, four per octave from 10 us to ~20 s: a percentile is exact to within 19 %.

`observe()` runs on the ROS executor thread, `summary()` on the event loop: one lock.
"""

from bisect import bisect_left, bisect_right
from collections import deque
from itertools import accumulate
import math
import threading
from typing import Any

LOWEST_S = 1e-5
BINS_PER_OCTAVE = 4
OCTAVES = 21
# Upper edges of the bins; the last bin takes everything above.
EDGES = tuple(LOWEST_S * 2 ** (i / BINS_PER_OCTAVE) for i in range(OCTAVES * BINS_PER_OCTAVE))


class LatencyWindow:
    """Per-second latency histograms of one stream over the last `window_s` seconds."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._seconds: deque[tuple[int, list[int]]] = deque()
        self._lock = threading.Lock()

    def observe(self, latency_s: float, now: float) -> None:
        """Count one message that was `latency_s` old at monotonic time `now`."""
        second = math.floor(now)
        index = bisect_right(EDGES, max(0.0, latency_s))
        with self._lock:
            if not self._seconds or self._seconds[-1][0] != second:
                self._seconds.append((second, [0] * (len(EDGES) + 1)))
                while self._seconds[0][0] <= second - self.window_s:
                    self._seconds.popleft()
            self._seconds[-1][1][index] += 1

    def summary(self, now: float, span_s: float) -> dict[str, Any]:
        """Return p50/p99 (ms, None without data) and the count over the last `span_s`."""
        first = math.floor(now) - math.ceil(span_s) + 1  # whole seconds, the current one too
        totals = [0] * (len(EDGES) + 1)
        with self._lock:
            for second, counts in self._seconds:
                if second >= first:
                    totals = [a + b for a, b in zip(totals, counts, strict=True)]
        count = sum(totals)
        return {'p50_ms': _percentile_ms(totals, count, 0.50),
                'p99_ms': _percentile_ms(totals, count, 0.99),
                'count': count, 'span_s': span_s}


def _percentile_ms(totals: list[int], count: int, fraction: float) -> float | None:
    """Return the geometric middle of the bin holding the `fraction` quantile, in ms."""
    if count == 0:
        return None
    index = bisect_left(list(accumulate(totals)), fraction * count)
    if index == 0:
        value = EDGES[0]
    elif index == len(EDGES):
        value = EDGES[-1]
    else:
        value = math.sqrt(EDGES[index - 1] * EDGES[index])
    return round(value * 1000.0, 3)
