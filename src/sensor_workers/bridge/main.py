"""The bridge process's entry point: SIGINT/SIGTERM are caught before anything heavy loads.

Importing rclpy, FastAPI and uvicorn takes ~0.8 s. A SIGINT in that time (launch stopping a
bridge it has just respawned, a Ctrl-C) raised KeyboardInterrupt in the middle of an import: a
traceback and exit -2, which launch reports as a failure; a SIGTERM killed it by default action.
Here either one only sets a flag, and the bridge exits 0 as soon as it can act on it.
"""

from sensor_workers.bridge.stop_request import StopRequest
from sensor_workers.lifetime import die_with_parent


def main(args: list[str] | None = None) -> None:
    die_with_parent()  # when started by `sensor-workers up` (its SIGKILL must not orphan us)
    stop = StopRequest()
    stop.install()
    from sensor_workers.bridge import node  # the heavy imports, now interruptible by a flag

    node.run(stop, args)
