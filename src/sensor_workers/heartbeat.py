"""Worker heartbeat, published from the hardware loop's own progress.

A timer in the executor would keep beating while the hardware loop hangs; calling `beat()` from
the loop itself means a missing heartbeat is a stuck loop, and `samples` that stop advancing are
a stalled device.
"""

import os
import time

from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.node import Node

from sensor_workers import qos
from sensor_workers.diagnostics import OK, make_status


class Heartbeat:
    """Rate-limited publisher of `~/heartbeat`; safe to call from the loop thread."""

    def __init__(self, node: Node, period_s: float) -> None:
        self.period_s = period_s
        self._name = node.get_fully_qualified_name()
        self._publisher = node.create_publisher(DiagnosticStatus, '~/heartbeat', qos.HEARTBEAT)
        self._seq = 0
        self._next_due = 0.0
        self._last_time: float | None = None
        self._last_samples = 0
        self.rate_hz = 0.0

    def beat(
        self,
        samples: int,
        dropped: int = 0,
        level: int = OK,
        message: str = 'running',
        hardware_id: str = '',
        now: float | None = None,
    ) -> bool:
        """Publish a heartbeat if one is due; return whether one was sent.

        Cheap when none is due, so the loop may call it once per sample.
        """
        now = time.monotonic() if now is None else now
        if now < self._next_due:
            return False
        if self._last_time is not None and now > self._last_time:
            self.rate_hz = (samples - self._last_samples) / (now - self._last_time)
        self._last_time, self._last_samples = now, samples
        # Schedule from `now`, not from the previous due time: after a hiccup, do not burst.
        self._next_due = now + self.period_s
        self._seq += 1
        self._publisher.publish(make_status(
            self._name, level, message, hardware_id,
            {
                'seq': self._seq,
                'samples': samples,
                'rate_hz': self.rate_hz,
                'dropped': dropped,
                'pid': os.getpid(),
            },
        ))
        return True

    def reset(self) -> None:
        """Forget the rate baseline, e.g. when the loop restarts after a deactivate."""
        self._next_due = 0.0
        self._last_time = None
        self.rate_hz = 0.0
