"""The bridge's SIGINT/SIGTERM handler from its first line until uvicorn takes the signals over."""

import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import uvicorn


class StopRequest:
    """SIGINT/SIGTERM before uvicorn owns them: remembered and passed on, never raised.

    Raising KeyboardInterrupt from the handler lost signals: one that arrived while a weakref
    callback ran was printed as "Exception ignored" and dropped, and the bridge served on
    (test_bridge_signals.py). Setting flags cannot be lost. uvicorn installs its own handlers
    while it serves and raises the signal again when it is done; this one covers the rest.
    """

    def __init__(self) -> None:
        self.requested = False
        self.server: uvicorn.Server | None = None

    def __call__(self, signum: int, frame: object) -> None:
        self.requested = True
        if self.server is not None:
            self.server.should_exit = True  # uvicorn skips serving, or stops

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self)
