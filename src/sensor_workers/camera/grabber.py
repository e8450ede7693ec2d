"""Grabbing from one camera for the worker's grab thread: failures, loss and reconnection.

No rclpy here: the node calls `step()` in its loop, publishes what it returns, and hears of a
loss or a reconnection through `GrabEvents` (to log it, reset its heartbeat and timestamps).

- A failed buffer, a grab error, or no frame for `frame_timeout_s()` counts as a failure;
  FAILURES_BEFORE_RECONNECT in a row, or a removal event, make the camera lost.
- A lost camera is closed and reopened by serial, settings re-applied, in a thread of its own
  (opening enumerates devices: ~0.5 s), so the grab thread keeps beating meanwhile.
- Frames the camera numbered but never delivered are counted from its block ids.
"""

from collections.abc import Callable
from dataclasses import dataclass
import threading
import time
from typing import Protocol

from sensor_workers.camera.basler import BaslerCamera, CameraError, CameraRemoved, Frame

FAILURES_BEFORE_RECONNECT = 10  # consecutive failed buffers / timeouts that mean "device lost"
RECONNECT_PERIOD_S = 1.0


@dataclass
class GrabCounters:
    """Cumulative over the node's life (written by the grab and reconnect threads only)."""

    frames_grabbed: int = 0
    failed_grabs: int = 0
    grab_timeouts: int = 0
    camera_skipped: int = 0
    reconnects: int = 0


class GrabEvents(Protocol):
    """What a Grabber reports, each on the thread named."""

    def grab_failed(self, error: CameraError) -> None:
        """Hear of a grab that raised, a removal excepted (grab thread)."""

    def lost(self, camera: BaslerCamera, reason: str) -> None:
        """Hear that the camera is lost; it is closed right after (grab thread)."""

    def reconnected(self, camera: BaslerCamera) -> None:
        """Hear that the camera was reopened; grabbing resumes after this (reconnect thread)."""


class Grabber:
    """One activation's grabbing from a started camera."""

    def __init__(self, camera: BaslerCamera, counters: GrabCounters, events: GrabEvents,
                 frame_timeout_s: Callable[[], float], first_retry_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.camera = camera
        self.counters = counters
        self._events = events
        self._frame_timeout_s = frame_timeout_s
        # The first reopen after a loss waits this long: a heartbeat period, so that the ERROR
        # beat goes out before the attempt.
        self._first_retry_s = first_retry_s
        self._clock = clock
        self.lost = False
        self.lost_reason = ''
        self.failures = 0  # in a row
        self.last_block_id = 0
        self._last_frame = clock()
        self._next_reconnect = 0.0
        self._reconnector: threading.Thread | None = None

    def step(self, wake_ms: int, stop: threading.Event) -> Frame | None:
        """Grab for up to `wake_ms`; return a good frame, else None (also while lost).

        While lost, start a reconnection when one is due and wait `wake_ms` (or for `stop`).
        """
        self._reap_reconnector()
        if self.lost:
            if self._reconnector is None and self._clock() >= self._next_reconnect:
                self._reconnector = threading.Thread(
                    target=self._reconnect, name='reconnect', daemon=True)
                self._reconnector.start()
            stop.wait(wake_ms / 1000)
            return None
        try:
            frame = self.camera.grab(wake_ms)
        except CameraRemoved as error:
            self._lose(str(error))
            return None
        except CameraError as error:
            self.counters.failed_grabs += 1
            self.failures += 1
            frame = None
            self._events.grab_failed(error)
        now = self._clock()
        if frame is None:
            if now - self._last_frame > self._frame_timeout_s():
                self.counters.grab_timeouts += 1
                self.failures += 1
                self._last_frame = now
        else:
            self._last_frame = now
            self._count_block_id(frame.block_id)
            if frame.error:
                self.counters.failed_grabs += 1
                self.failures += 1
                frame = None
            else:
                self.failures = 0
                self.counters.frames_grabbed += 1
        if self.failures >= FAILURES_BEFORE_RECONNECT:
            self._lose(f'{self.failures} failed grabs in a row')
        return frame

    def join(self) -> None:
        """Wait for a reconnection under way (after the grab thread has stopped)."""
        reconnector, self._reconnector = self._reconnector, None
        if reconnector is not None:
            reconnector.join()

    def _reap_reconnector(self) -> None:
        if self._reconnector is not None and not self._reconnector.is_alive():
            self._reconnector.join()
            self._reconnector = None
            self.failures, self._last_frame = 0, self._clock()

    def _count_block_id(self, block_id: int) -> None:
        """Count frames the camera numbered but never delivered.

        The counter restarts with every grab start and wraps (16 bits on GigE): a step backwards
        starts over instead of counting.
        """
        last, self.last_block_id = self.last_block_id, block_id
        if last and block_id > last + 1:
            self.counters.camera_skipped += block_id - last - 1

    def _lose(self, reason: str) -> None:
        self.lost, self.lost_reason = True, reason
        self._events.lost(self.camera, reason)
        self.camera.close()
        self._next_reconnect = self._clock() + self._first_retry_s

    def _reconnect(self) -> None:
        """Re-enumerate by serial, re-apply the settings, resume grabbing (reconnect thread)."""
        camera = self.camera
        try:
            camera.open(camera.settings)
            camera.start()
        except CameraError as error:
            self.lost_reason = str(error)
            self._next_reconnect = self._clock() + RECONNECT_PERIOD_S
            camera.close()
            return
        self.counters.reconnects += 1
        self.last_block_id = 0
        self._events.reconnected(camera)
        self.lost = False
