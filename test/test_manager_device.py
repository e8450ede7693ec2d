"""A Device's heartbeat bookkeeping, with a stand-in process: no node, no ROS graph."""

from sensor_workers.heartbeat import STANDBY_READY_SEQ, HeartbeatRecord
from sensor_workers.manager.device import Device
from sensor_workers.manager.liveness import Liveness, LivenessConfig, Verdict
from sensor_workers.manager.policy import PolicyConfig, RestartPolicy
from sensor_workers.manager.process import WorkerSpec
from sensor_workers.manager.standbys import WarmStandby

PID = 4321


class PipeProcess:
    """A worker process whose heartbeat pipe holds what the test wrote."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.pipe = b''

    def write(self, *records: HeartbeatRecord) -> None:
        self.pipe += b''.join(record.pack() for record in records)

    def read_heartbeats(self) -> bytes:
        data, self.pipe = self.pipe, b''
        return data


def beat(seq: int, samples: int, sent_s: float, pid: int = PID) -> HeartbeatRecord:
    return HeartbeatRecord(seq=seq, samples=samples, dropped=0, rate_hz=100.0, pid=pid,
                           tid=pid + 1, sent_ns=round(sent_s * 1e9))


def device_with(process: PipeProcess) -> Device:
    # The lifecycle driver and the restart service are not used here: no node needed.
    device = Device(WorkerSpec(name='ft', module='sensor_workers.ft.node'),
                    RestartPolicy(PolicyConfig()), WarmStandby(enabled=False),
                    driver=None, restart_service=None)
    device.process = process
    return device


def test_only_the_current_process_beats_count() -> None:
    process = PipeProcess(PID)
    device = device_with(process)
    process.write(beat(1, 10, 1.0), beat(STANDBY_READY_SEQ, 0, 1.1),
                  beat(2, 20, 1.2, pid=PID + 100))
    device.read_heartbeats()
    assert device.last_record == beat(1, 10, 1.0)


def test_a_beat_before_activation_is_judged_from_activation_on() -> None:
    process = PipeProcess(PID)
    device = device_with(process)
    process.write(beat(1, 10, 1.0))
    device.read_heartbeats()  # an autostarted worker beats before the manager sees it active
    assert device.judge(1.2, 0.0) is None  # not active: nothing to judge
    liveness = Liveness(LivenessConfig(), active_at=1.1)
    device.activated(liveness)
    assert (liveness.last_sent, liveness.samples, liveness.loop_tid) == (1.0, 10, PID + 1)
    assert device.lifecycle_active


def test_a_new_beat_ends_a_reported_late_silence() -> None:
    process = PipeProcess(PID)
    device = device_with(process)
    device.policy.start(0.0)
    device.policy.activated(0.5)
    device.activated(Liveness(LivenessConfig(), active_at=0.5))
    process.write(beat(1, 10, 0.6))
    device.read_heartbeats()
    judgement = device.judge(0.7, 0.0)
    assert judgement is not None and judgement.verdict is Verdict.OK
    device.late_reported = True
    process.write(beat(2, 20, 0.8))
    device.read_heartbeats()
    assert not device.late_reported
