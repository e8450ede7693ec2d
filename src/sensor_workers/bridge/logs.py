"""Log lines of the cell's nodes for web clients: filtered, rate-limited per node, remembered.

The bridge reads `/rosout` (every ROS node publishes its log there) and keeps the lines of the
nodes it watches: the devices' workers and the manager, children of their loggers included
(`ft.sim` counts as `ft`). Each node has a token bucket, so one node that floods its log costs
web clients a bounded rate and the other nodes nothing; what the bucket refuses is counted per
node. No ROS here: the ROS callback hands plain values in.
"""

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sensor_workers.bridge.queues import RateLimiter

# rcl_interfaces/msg/Log levels (bytes on the wire).
LEVELS = {10: 'debug', 20: 'info', 30: 'warn', 40: 'error', 50: 'fatal'}
LEVEL_NUMBERS = {name: number for number, name in LEVELS.items()}
# Lines below this are never taken (a node at debug would flood the bridge for nothing).
LOWEST = LEVEL_NUMBERS['info']
# What a client gets unless it asks for more.
DEFAULT_CLIENT_LEVEL = LEVEL_NUMBERS['warn']
MAX_TEXT_CHARS = 2000


@dataclass(frozen=True)
class LogLine:
    """One line as `/ws/events` sends it (`type: log`) and `/status` lists it."""

    node: str
    level: str
    text: str
    stamp_ns: int

    @property
    def level_number(self) -> int:
        return LEVEL_NUMBERS[self.level]

    def event(self) -> dict[str, Any]:
        return {'type': 'log', **asdict(self)}


def level_name(number: int) -> str:
    """Return the name of a level number; one between two levels counts as the lower."""
    return LEVELS[max((n for n in LEVELS if n <= number), default=min(LEVELS))]


def level_number(name: str) -> int:
    """Return the number of a level name (`debug` ... `fatal`); raise ValueError if unknown."""
    try:
        return LEVEL_NUMBERS[name]
    except KeyError:
        raise ValueError(f'log_level must be one of {", ".join(LEVEL_NUMBERS)}') from None


class LogBook:
    """Which lines go out, the last ones per node, and the drops."""

    def __init__(self, nodes: tuple[str, ...], rate_per_node: float, burst: int,
                 history: int, count_drop: Callable[[], None] = lambda: None) -> None:
        self.nodes = nodes
        self._count_drop = count_drop
        self._rate, self._burst = rate_per_node, float(burst)
        self._limiters: dict[str, RateLimiter] = {}
        self._history: dict[str, deque[LogLine]] = {node: deque(maxlen=history)
                                                     for node in nodes}
        self.accepted: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()

    def node_of(self, logger: str) -> str | None:
        """Return the watched node a logger belongs to (`ft` for `ft` and `ft.sim`), or None."""
        for node in self.nodes:
            if logger == node or logger.startswith(node + '.'):
                return node
        return None

    def take(self, logger: str, level: int, text: str, stamp_ns: int,
             now: float) -> LogLine | None:
        """Return the line to send, or None: not ours, below info, or over the node's rate."""
        node = self.node_of(logger)
        if node is None or level < LOWEST:
            return None
        limiter = self._limiters.get(node)
        if limiter is None:
            limiter = self._limiters[node] = RateLimiter(self._rate, capacity=self._burst,
                                                          tokens=self._burst)
        if not limiter.accept(now):
            self.dropped[node] += 1
            self._count_drop()
            return None
        self.accepted[node] += 1
        line = LogLine(node, level_name(level), text[:MAX_TEXT_CHARS], stamp_ns)
        self._history[node].append(line)
        return line

    def status(self) -> dict[str, Any]:
        """Return the last lines per node (oldest first) and the counts, for /status."""
        return {node: {'lines': [asdict(line) for line in lines],
                       'accepted': self.accepted[node], 'dropped': self.dropped[node]}
                for node, lines in self._history.items()}
