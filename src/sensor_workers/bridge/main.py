"""The bridge process's entry point: SIGINT/SIGTERM are caught before anything heavy loads.

Importing rclpy, FastAPI and uvicorn takes ~0.8 s. A SIGINT in that time (launch stopping a
bridge it has just respawned, a Ctrl-C) raised KeyboardInterrupt in the middle of an import: a
traceback and exit -2, which launch reports as a failure; a SIGTERM killed it by default action.
Here either one only sets a flag, and the bridge exits 0 as soon as it can act on it.
"""

import signal
from typing import TYPE_CHECKING

from sensor_workers.lifetime import die_with_parent

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


def main(args: list[str] | None = None) -> None:
    die_with_parent()  # when started by `sensor-workers up` (its SIGKILL must not orphan us)
    stop = StopRequest()
    stop.install()
    from sensor_workers.bridge import node  # the heavy imports, now interruptible by a flag

    node.run(stop, args)
