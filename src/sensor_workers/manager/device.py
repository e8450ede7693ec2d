"""Device: the manager's view of one supervised device, its worker process and what it knows.

Used from the manager's executor thread only. The node creates what talks to ROS (the
lifecycle driver and the `~/<name>/restart` service) and hands it in; nothing here calls back
into the node.
"""

from rclpy.service import Service

from sensor_workers.heartbeat import HeartbeatRecord
from sensor_workers.manager.driver import LifecycleDriver
from sensor_workers.manager.liveness import Judgement, Liveness
from sensor_workers.manager.policy import RestartPolicy
from sensor_workers.manager.process import WorkerProcess, WorkerSpec, thread_sample
from sensor_workers.manager.standbys import WarmStandby
from sensor_workers.manager.states import DeviceState

NANOSECONDS = 1e9


class Device:
    """The manager's view of one device (used from the executor thread only)."""

    def __init__(self, spec: WorkerSpec, policy: RestartPolicy, standby: WarmStandby,
                 driver: LifecycleDriver, restart_service: Service) -> None:
        self.name = spec.name
        self.spec = spec
        self.policy = policy
        self.process: WorkerProcess | None = None
        self.standby = standby
        # Incremented per spawn; exits and answers of an older generation are ignored.
        self.generation = 0
        # Drives the current process's lifecycle (driver.py).
        self.driver = driver
        self.lifecycle_active = False
        self.terminate_at: float | None = None
        # The newest heartbeat of the current process, and the judge of its liveness (from
        # activation on).
        self.last_record: HeartbeatRecord | None = None
        self.liveness: Liveness | None = None
        # A LATE verdict was reported for the current silence.
        self.late_reported = False
        # `~/<name>/restart`; kept here so that the node destroys it with the device.
        self.restart_service = restart_service

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else 0

    def process_gone(self) -> bool:
        return self.process is None or not self.process.alive()

    def process_ended(self) -> bool:
        """Return whether the process has ended, even if the thread that reaps it has not run."""
        return self.process is None or self.process.ended()

    def all_gone(self) -> bool:
        return self.process_gone() and self.standby.gone()

    def reset_runtime(self) -> None:
        self.process = None
        self.driver.cancel()
        self.lifecycle_active = False
        self.terminate_at = None
        self.last_record = None
        self.liveness = None
        self.late_reported = False

    def terminate(self, grace_s: float) -> None:
        """Stop driving the worker and end its process: SIGTERM, SIGKILL after `grace_s`."""
        self.driver.cancel()
        self.terminate_at = None
        if self.process is not None and self.process.alive():
            self.process.terminate(grace_s)

    def process_exited(self, process: WorkerProcess) -> None:
        """Take the current generation's `process` as ended (its spawn may not be reported)."""
        if self.process is None:
            self.process = process
        process.close_heartbeats()
        self.driver.cancel()
        self.lifecycle_active = False

    # Heartbeats

    def read_heartbeats(self) -> None:
        """Take what the current process wrote into its heartbeat pipe since the last call."""
        process = self.process
        if process is None:
            return
        for record in HeartbeatRecord.unpack_all(process.read_heartbeats()):
            if record.pid == process.pid and not record.standby_ready:
                self.last_record = record
                self._take_beat(record)

    def activated(self, liveness: Liveness) -> None:
        """Take the worker as active: `liveness` judges it from now on."""
        self.lifecycle_active = True
        self.liveness = liveness
        if self.last_record is not None:  # an autostarted worker beats before we confirm
            self._take_beat(self.last_record)

    def judge(self, now: float, tick_late_s: float) -> Judgement | None:
        """Judge an active worker's liveness (None: not active, nothing to judge).

        Its loop thread is sampled in /proc; before the first beat names it, its main thread.
        """
        if self.policy.phase is not DeviceState.ACTIVE or self.liveness is None:
            return None
        thread = thread_sample(self.pid, self.liveness.loop_tid)
        return self.liveness.judge(now, tick_late_s, thread)

    def _take_beat(self, record: HeartbeatRecord) -> None:
        if self.liveness is not None:
            self.liveness.beat(record.sent_ns / NANOSECONDS, record.samples, record.tid)
            self.late_reported = False
