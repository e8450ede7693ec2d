"""Header stamps between nanoseconds and `builtin_interfaces/Time`, one way each."""

from typing import Protocol

from builtin_interfaces.msg import Time

NS_PER_S = 1_000_000_000


class Stamped(Protocol):
    """A header, or a message with its own `stamp` field (rcl_interfaces/Log)."""

    stamp: Time


def to_time(stamp_ns: int) -> Time:
    """Return a stamp given in nanoseconds as a `Time` message."""
    return Time(sec=stamp_ns // NS_PER_S, nanosec=stamp_ns % NS_PER_S)


def stamp_ns(stamped: Stamped) -> int:
    """Return the `stamp` of a header or a Log message in nanoseconds."""
    return stamped.stamp.sec * NS_PER_S + stamped.stamp.nanosec
