"""What the manager publishes of a device, built from a Device alone: no node, no ROS graph."""

from types import SimpleNamespace

from builtin_interfaces.msg import Time

from sensor_workers.diagnostics import level_of, status_values
from sensor_workers.heartbeat import HeartbeatRecord
from sensor_workers.manager import reporting
from sensor_workers.manager.device import Device
from sensor_workers.manager.liveness import Judgement, Verdict
from sensor_workers.manager.policy import Event, PolicyConfig, RestartPolicy
from sensor_workers.manager.process import WorkerSpec
from sensor_workers.manager.standbys import WarmStandby
from sensor_workers.manager.states import ERROR, OK, WARN, EventKind

TIMEOUT_MS = 300


def make_device(name: str = 'ft', pid: int = 0, degraded_after_failures: int = 5) -> Device:
    """Return a device whose process, if `pid`, is a stand-in with that pid."""
    # Reporting never touches the lifecycle driver or the restart service: no node needed.
    device = Device(WorkerSpec(name=name, module=f'sensor_workers.{name}.node'),
                    RestartPolicy(PolicyConfig(degraded_after_failures=degraded_after_failures)),
                    WarmStandby(enabled=True), driver=None, restart_service=None)
    if pid:
        device.process = SimpleNamespace(pid=pid)
    return device


def test_a_device_never_started_is_stopped_without_heartbeat() -> None:
    status = reporting.device_status(make_device(), 'ft', TIMEOUT_MS, now_ns=10**9)
    assert (status.name, status.message, status.hardware_id) == ('ft', 'stopped', 'ft')
    assert level_of(status) == OK
    assert status_values(status) == {
        'state': 'stopped', 'restarts': '0', 'failures': '0', 'heartbeat_age_ms': '-1',
        'heartbeat_timeout_ms': '300', 'pid': '0', 'rate_hz': '0', 'samples': '0',
        'dropped': '0', 'queue_dropped': '0', 'degraded': 'false', 'backoff_ms': '0',
        'last_error': '', 'standby': 'none'}


def test_the_newest_heartbeat_gives_its_age_rate_and_counters() -> None:
    device = make_device(pid=4321)
    device.policy.start(0.0)
    device.last_record = HeartbeatRecord(seq=7, samples=1200, dropped=3, rate_hz=999.5,
                                         pid=4321, tid=4322, sent_ns=5_000_000_000,
                                         queue_dropped=2)
    status = reporting.device_status(device, 'ft', TIMEOUT_MS, now_ns=5_250_400_000)
    values = status_values(status)
    assert status.message == 'starting'
    assert {key: values[key] for key in ('heartbeat_age_ms', 'pid', 'rate_hz', 'samples',
                                         'dropped', 'queue_dropped')} == {
        'heartbeat_age_ms': '250', 'pid': '4321', 'rate_hz': '999.5', 'samples': '1200',
        'dropped': '3', 'queue_dropped': '2'}


def test_a_degraded_device_is_an_error_even_once_stopped() -> None:
    device = make_device(degraded_after_failures=1)
    device.policy.start(0.0)
    device.policy.exited(-9, 1.0)
    device.policy.request_stop(1.5)
    status = reporting.device_status(device, 'ft', TIMEOUT_MS, now_ns=0)
    values = status_values(status)
    assert status.message == 'stopped'
    assert level_of(status) == ERROR
    assert (values['degraded'], values['failures'], values['last_error'],
            values['backoff_ms']) == ('true', '1', 'exited with code -9', '5000')


def test_a_restarting_device_is_a_warning() -> None:
    device = make_device()
    device.policy.start(0.0)
    device.policy.exited(1, 1.0)
    status = reporting.device_status(device, 'ft', TIMEOUT_MS, now_ns=0)
    assert (status.message, level_of(status)) == ('restarting', WARN)


def test_the_array_names_every_device_with_the_prefix_and_carries_the_stamp() -> None:
    devices = [make_device('camera'), make_device('ft')]
    array = reporting.device_array(devices, Time(sec=12, nanosec=34), TIMEOUT_MS, now_ns=0,
                                   prefix=reporting.DIAGNOSTICS_PREFIX)
    assert (array.header.stamp.sec, array.header.stamp.nanosec) == (12, 34)
    assert [status.name for status in array.status] == ['manager: camera', 'manager: ft']
    assert [status.hardware_id for status in array.status] == ['camera', 'ft']
    plain = reporting.device_array(devices, Time(), TIMEOUT_MS, now_ns=0)
    assert [status.name for status in plain.status] == ['camera', 'ft']


def test_an_event_carries_its_kind_the_pid_the_exit_code_and_the_stamp() -> None:
    device = make_device(pid=4321)
    event = Event(EventKind.EXITED, WARN, 'exited with code -9', exit_code=-9)
    status = reporting.event_status(device, event, stamp_ns=1_700_000_000_123)
    assert (status.name, status.message, level_of(status)) == (
        'ft', 'exited with code -9', WARN)
    assert status_values(status) == {'event': 'exited', 'restarts': '0', 'pid': '4321',
                                     'exit_code': '-9', 'stamp_ns': '1700000000123'}
    assert reporting.event_text(device, event) == 'ft: exited: exited with code -9'


def test_an_event_without_exit_code_has_an_empty_one() -> None:
    event = Event(EventKind.RESTART_REQUESTED, WARN, 'restart requested')
    status = reporting.event_status(make_device(), event, stamp_ns=0)
    assert status_values(status)['exit_code'] == ''


def test_a_late_verdict_becomes_a_warning_that_nothing_failed_yet() -> None:
    event = reporting.late_event(Judgement(Verdict.LATE, 0.4567, 'loop thread starved of CPU'))
    assert (event.kind, event.level, event.exit_code) == (EventKind.HEARTBEAT_LATE, WARN, None)
    assert event.message == ('no heartbeat for 457 ms: loop thread starved of CPU; '
                             'not failed yet')


def test_the_signature_changes_with_what_the_states_show() -> None:
    devices = [make_device('camera'), make_device('ft')]
    before = reporting.signature(devices)
    assert reporting.signature(devices) == before
    devices[1].policy.start(0.0)
    started = reporting.signature(devices)
    assert started != before
    devices[1].standby.pending = True  # the standby is being spawned
    assert reporting.signature(devices) != started
    devices[1].process = SimpleNamespace(pid=4321)
    assert reporting.signature(devices)[1][-2:] == (4321, 'starting')


def test_heartbeat_age_and_counters_leave_the_signature_alone() -> None:
    device = make_device(pid=4321)
    before = reporting.signature([device])
    device.last_record = HeartbeatRecord(seq=1, samples=10, dropped=0, rate_hz=100.0,
                                         pid=4321, tid=4321, sent_ns=0)
    assert reporting.signature([device]) == before
