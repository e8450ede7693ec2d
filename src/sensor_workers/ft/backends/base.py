"""The small interface every F/T backend implements, used by the worker's read loop."""

from typing import Protocol

from sensor_workers.ft.protocol import Frame


class BackendError(RuntimeError):
    """Opening or configuring the sensor failed; the message is the one-line reason."""


class Backend(Protocol):
    """A sensor connection. `configure`/`start`/`stop`/`close` raise BackendError on failure.

    `read` never raises: when the device is lost it returns None, sets `error`, and reconnects by
    itself on later calls. `generation` increases on every (re)connection, so the caller can reset
    state tied to the sensor clock.
    """

    name: str
    error: str
    generation: int

    def configure(self) -> None:
        """Open the port and put the sensor into the configured state (not streaming)."""

    def start(self, rt_priority: int = 0) -> None:
        """Start streaming.

        `rt_priority`: SCHED_FIFO priority for threads the backend reads the sensor in besides
        the caller's loop (bota_driver's reader process); 0: normal scheduling.
        """

    def read(self, timeout: float) -> Frame | None:
        """Return the next frame, or None after `timeout` seconds without one."""

    def stop(self) -> None:
        """Stop streaming (the port stays open)."""

    def close(self) -> None:
        """Close the port; idempotent."""

    def counters(self) -> dict[str, int]:
        """Error and traffic counters for /diagnostics (cumulative)."""
