"""Keep a child process running: restarted with backoff whenever it ends on its own.

`sensor-workers up` and `sensor-workers bridge` run the bridge this way. The decisions are the
manager's own `RestartPolicy` (exponential delays up to a cap, back to the initial delay after a
stable period, `degraded` after too many failures in a window), so a crash-looping bridge is
retried every `backoff_max_s` instead of burning a core, and the rules are the ones the workers
live by. A process counts as started once it is spawned: the policy's start timeout does not
apply, since only the process itself could tell when it is ready.
"""

from collections.abc import Callable
import logging
import subprocess
import time

from sensor_workers.manager.policy import PolicyConfig, RestartPolicy
from sensor_workers.manager.states import Action, EventKind

log = logging.getLogger(__name__)

# What a respawned process reports besides its own exit (which RESTARTING already names).
_REPORTED = (EventKind.RESTARTING, EventKind.DEGRADED, EventKind.RESTARTED, EventKind.RECOVERED)


class RespawnedProcess:
    """One child process, restarted by `tick()` after it ends, until `stop_supervising()`."""

    def __init__(self, name: str, spawn: Callable[[], subprocess.Popen],
                 config: PolicyConfig | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._spawn = spawn
        self._clock = clock
        self.policy = RestartPolicy(config or PolicyConfig())
        self.process: subprocess.Popen | None = None

    @property
    def restarts(self) -> int:
        return self.policy.restarts

    def start(self) -> None:
        self._carry_out(self.policy.start(self._clock()))

    def tick(self) -> None:
        """Notice an exit, and spawn again once the policy's delay has passed."""
        now = self._clock()
        if self.process is not None and self.process.poll() is not None:
            code = self.process.returncode
            self.process = None
            self._carry_out(self.policy.exited(code, now))
        self._carry_out(self.policy.transition(now))

    def stop_supervising(self) -> subprocess.Popen | None:
        """Restart no more; return the running process (if any) for the caller to stop."""
        self.policy.request_stop(self._clock())
        self._report()
        return self.process

    def _carry_out(self, actions: list[Action]) -> None:
        for action in actions:
            if action is Action.SPAWN:
                now = self._clock()
                try:
                    self.process = self._spawn()
                except OSError as error:
                    self._carry_out(self.policy.spawn_failed(str(error), now))
                    continue
                self.policy.activated(now)
            elif action in (Action.KILL, Action.STOP) and self.process is not None:
                self.process.kill()
        self._report()

    def _report(self) -> None:
        for event in self.policy.drain_events():
            if event.kind not in _REPORTED:
                continue
            pid = f' (pid {self.process.pid})' if event.kind in (
                EventKind.RESTARTED, EventKind.RECOVERED) and self.process else ''
            log.warning('%s: %s%s', self.name, event.message, pid)
