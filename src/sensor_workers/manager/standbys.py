"""The warm standby of one device, as the manager keeps it (the process itself: standby.py).

One spare worker process per active device, spawned once the device has been active for
`STANDBY_AFTER_S` (a standby importing while the worker starts would slow that start). It says
it is ready with a heartbeat record through its pipe; on a failure the manager hands the device
to it (`take()`) instead of starting a fresh interpreter. Used from the executor thread only.
"""

from sensor_workers.heartbeat import HeartbeatRecord
from sensor_workers.manager.process import WorkerProcess

# A warm standby is started once the device has been active this long (not while it starts).
STANDBY_AFTER_S = 1.0


class WarmStandby:
    """The spare process of one device: none, being spawned, starting, or ready."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.process: WorkerProcess | None = None
        self.ready = False
        # Asked of the spawner, not there yet.
        self.pending = False

    def wanted(self, active_for_s: float | None) -> bool:
        """Whether to spawn one now, for a device active this long (None: not active)."""
        return (self.enabled and self.process is None and not self.pending
                and active_for_s is not None and active_for_s >= STANDBY_AFTER_S)

    def spawned(self, process: WorkerProcess) -> None:
        self.process = process

    def read_ready(self) -> None:
        """Take the standby's `ready` record from its pipe, if it sent it."""
        process = self.process
        if process is None or self.ready:
            return
        self.ready = any(record.pid == process.pid and record.standby_ready
                         for record in HeartbeatRecord.unpack_all(process.read_heartbeats()))

    def take(self) -> WorkerProcess | None:
        """Hand the standby over (it is no longer the standby); None if there is no live one."""
        process, self.process = self.process, None
        self.ready = False
        return process if process is not None and process.alive() else None

    def exited(self, process: WorkerProcess) -> bool:
        """Forget `process` if it is this standby; return whether it was."""
        if process is not self.process:
            return False
        self.process = None
        self.ready = False
        return True

    def drop(self, grace_s: float) -> None:
        """End the standby: end of input, then SIGTERM (SIGKILL after `grace_s`)."""
        if self.process is not None:
            self.process.close_stdin()
            self.process.terminate(grace_s)

    def gone(self) -> bool:
        return not self.pending and (self.process is None or not self.process.alive())

    def state(self) -> str:
        """`ready`, `starting` (spawned, not ready yet), `none` or `off` (disabled)."""
        if self.process is not None:
            return 'ready' if self.ready else 'starting'
        if self.pending:
            return 'starting'
        return 'none' if self.enabled else 'off'
