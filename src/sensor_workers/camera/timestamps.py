"""Map camera timestamps (ticks of the camera's own clock) onto the ROS clock.

A frame's camera timestamp is taken at exposure; the host sees the frame later, after transfer
and queueing. So `host_ns - camera_ns` is the true clock offset plus a latency that is never
negative and sometimes small. The minimum of that difference over a block of frames is therefore a
good estimate of the offset (plus the smallest latency); a straight line through recent block
minima also follows the drift between the two oscillators (tens of ppm for typical cameras).

Cameras that give no timestamp (0, as pypylon's emulator does) get the host time of the grab.
"""

from collections import deque
from dataclasses import dataclass

NS_PER_S = 1_000_000_000


@dataclass
class _Block:
    """The smallest offset seen in one block of frames, and the camera time where it was seen."""

    start_ns: int
    at_ns: int
    offset_ns: int


class TimestampMapper:
    """Turn camera ticks into host-clock nanoseconds with a min-filtered, drift-tracking offset.

    `map()` is called once per frame from the grab loop; it is O(window) only when a block ends.
    """

    def __init__(
        self,
        tick_ns: float = 1.0,
        block_s: float = 1.0,
        window_blocks: int = 30,
        reset_after_ns: int = NS_PER_S // 2,
    ) -> None:
        """Create a mapper.

        tick_ns: length of one camera tick (1.0 for USB3 Vision cameras, 1e9 / tick frequency for
        GigE). block_s: span of camera time over which one minimum is taken. window_blocks: how
        many block minima the drift line is fitted through. reset_after_ns: a disagreement between
        estimate and observation larger than this (camera reset, host clock step) starts over.
        """
        self.tick_ns = tick_ns
        self.block_ns = int(block_s * NS_PER_S)
        self.reset_after_ns = reset_after_ns
        self._blocks: deque[_Block] = deque(maxlen=window_blocks)
        self._current: _Block | None = None
        self._last_camera_ns: int | None = None
        self._slope = 0.0
        self._intercept_ns = 0.0
        self._reference_ns = 0
        self._offset_base_ns = 0
        self.resets = 0
        self.source = 'none'

    def map(self, ticks: int, host_ns: int) -> int:
        """Return the ROS time of a frame exposed at `ticks`, received at `host_ns`."""
        if ticks <= 0:
            self.source = 'host'
            return host_ns
        self.source = 'camera'
        camera_ns = int(ticks * self.tick_ns)
        offset_ns = host_ns - camera_ns
        if self._needs_reset(camera_ns, offset_ns):
            self._reset()
        self._last_camera_ns = camera_ns
        self._observe(camera_ns, offset_ns)
        # A frame cannot be exposed after it was received.
        return min(camera_ns + self.offset_at(camera_ns), host_ns)

    def offset_at(self, camera_ns: int) -> int:
        """Return the estimated host - camera offset at `camera_ns`."""
        if len(self._blocks) < 2:
            assert self._current is not None
            return self._current.offset_ns
        return self._offset_base_ns + int(
            self._intercept_ns + self._slope * (camera_ns - self._reference_ns))

    def _needs_reset(self, camera_ns: int, offset_ns: int) -> bool:
        if self._current is None:
            return False
        if self._last_camera_ns is not None and camera_ns < self._last_camera_ns:
            return True
        return abs(offset_ns - self.offset_at(camera_ns)) > self.reset_after_ns

    def _reset(self) -> None:
        self.resets += 1
        self._blocks.clear()
        self._current = None
        self._last_camera_ns = None

    def _observe(self, camera_ns: int, offset_ns: int) -> None:
        current = self._current
        if current is None:
            self._current = _Block(camera_ns, camera_ns, offset_ns)
            self._reference_ns = camera_ns
            return
        if camera_ns - current.start_ns >= self.block_ns:
            self._blocks.append(current)
            self._current = _Block(camera_ns, camera_ns, offset_ns)
            if len(self._blocks) >= 2:
                self._fit()
            return
        if offset_ns < current.offset_ns:
            current.offset_ns = offset_ns
            current.at_ns = camera_ns

    def _fit(self) -> None:
        """Least-squares line through the completed blocks' minima.

        Relative to the first block, so floats keep nanosecond resolution.
        """
        self._reference_ns = self._blocks[0].at_ns
        self._offset_base_ns = self._blocks[0].offset_ns
        xs = [float(b.at_ns - self._reference_ns) for b in self._blocks]
        ys = [float(b.offset_ns - self._offset_base_ns) for b in self._blocks]
        n = len(xs)
        mean_x = sum(xs) / n
        mean_y = sum(ys) / n
        sxx = sum((x - mean_x) ** 2 for x in xs)
        if sxx <= 0.0:
            self._slope = 0.0
        else:
            self._slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
            self._slope /= sxx
        self._intercept_ns = mean_y - self._slope * mean_x
