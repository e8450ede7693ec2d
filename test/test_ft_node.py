"""The `ft` worker end to end: bota_sim -> ft_node -> a test subscriber, over real DDS.

Most tests share one 800 Hz simulator and node (module scope) to stay within the time budget;
they run in file order and the tare test runs last among them because it changes the values.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
import statistics
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from ft_helpers import (
    SUBSCRIBER_QOS,
    check_stream,
    counters,
    ft_diagnostics,
    start_node,
    start_sim,
    wrench_tuple,
)
from geometry_msgs.msg import WrenchStamped
import pytest
from std_srvs.srv import Trigger

from sensor_workers.diagnostics import ERROR, level_of
from sensor_workers.ft.sim import send_control
from sensor_workers.testing.processes import ManagedProcess, ProcessGroup
from sensor_workers.testing.ros_probe import Received, RosProbe
from sensor_workers.testing.waiting import wait_until

pytestmark = pytest.mark.integration


@dataclass
class Ft:
    sim: ManagedProcess
    node: ManagedProcess
    control: Path
    probe: RosProbe
    wrench: Received
    diagnostics: Received
    heartbeat: Received


@pytest.fixture(scope='module')
def ft800(tmp_path_factory, ros_env) -> Iterator[Ft]:
    directory = tmp_path_factory.mktemp('ft800')
    procs = ProcessGroup(directory, ros_env)
    probe = RosProbe('ft800_probe')
    try:
        sim, link, control = start_sim(procs, directory, 64)
        node = start_node(procs, link, 64)
        wrench = probe.collect(WrenchStamped, '/ft/wrench', SUBSCRIBER_QOS)
        diagnostics = probe.collect(DiagnosticArray, '/diagnostics', 50)
        heartbeat = probe.collect(DiagnosticStatus, '/ft/heartbeat', 50)
        probe.bring_up('/ft', timeout=15)
        wait_until(lambda: wrench.count() > 100, 10, 'first samples')
        yield Ft(sim, node, control, probe, wrench, diagnostics, heartbeat)
    finally:
        probe.close()
        procs.stop_all()


def test_800hz_no_sample_missing_and_values_exact(ft800):
    ft800.wrench.clear()
    time.sleep(5.0)
    messages, _ = ft800.wrench.snapshot()
    check_stream(messages, 4000)
    level, values = ft_diagnostics(ft800.diagnostics)[-1]
    assert values['dropped'] == '0' and values['crc_errors'] == '0'
    assert float(values['rate_hz']) == pytest.approx(800, rel=0.1)


def test_faults_midstream_stream_continues_and_counters_rise(ft800):
    before = ft_diagnostics(ft800.diagnostics)[-1][1]
    ft800.wrench.clear()
    for fault in ('garbage 10', 'badcrc 1', 'badcrc 1', 'truncate 1 20', 'flags overrange 10'):
        send_control(ft800.control, fault)
        time.sleep(0.25)
    time.sleep(0.3)
    sent = len(ft_diagnostics(ft800.diagnostics))
    after = wait_until(lambda: len(ft_diagnostics(ft800.diagnostics)) > sent + 1 and
                       ft_diagnostics(ft800.diagnostics)[-1][1], 5, 'fresh diagnostics')

    def delta(key: str) -> int:
        return int(after[key]) - int(before[key])

    assert delta('sync_losses') == 4
    assert delta('crc_errors') == 3
    assert delta('truncated_frames') == 1
    assert delta('skipped_bytes') == 10 + 37 + 37 + 20
    assert delta('overrange_frames') == 10
    assert delta('dropped') == 3
    # The stream went on: exactly the three corrupted samples are missing.
    seen = counters(ft800.wrench.snapshot()[0])
    missing = set(range(seen[0], seen[-1] + 1)) - set(seen)
    assert len(missing) == 3
    assert len(seen) > 1000


def test_port_closed_for_2s_reports_error_then_streams_again(ft800):
    before = ft_diagnostics(ft800.diagnostics)[-1][1]
    ft800.heartbeat.clear()
    send_control(ft800.control, 'reopen 2000')
    lost = wait_until(
        lambda: [m for m in ft800.heartbeat.snapshot()[0] if level_of(m) == ERROR[0]], 2.0,
        'an ERROR heartbeat')
    assert 'sensor lost' in lost[0].message
    ft800.sim.wait_for_output(r'^reopened: ', timeout=5)
    ft800.wrench.clear()
    wait_until(lambda: ft800.wrench.count() > 400, 5, 'samples after the reopen')
    after = wait_until(lambda: [v for level, v in ft_diagnostics(ft800.diagnostics)
                                if level == 0 and v['reconnects'] != before['reconnects']],
                       3, 'diagnostics after the reconnect')[-1]
    assert int(after['reconnects']) == int(before['reconnects']) + 1
    assert int(after['disconnects']) == int(before['disconnects']) + 1
    seen = counters(ft800.wrench.snapshot()[0])
    assert seen == list(range(seen[0], seen[0] + len(seen)))


def test_invalid_parameters_are_refused_with_a_reason(ft800):
    results = ft800.probe.set_parameters('/ft', {'backend': 'serial_magic'})
    assert results[0][0] is False and 'backend must be one of' in results[0][1]
    results = ft800.probe.set_parameters('/ft', {'sinc_length': 5})
    assert results[0][0] is False
    results = ft800.probe.set_parameters('/ft', {'baudrate': 1234})
    assert results[0][0] is False and 'baudrate' in results[0][1]
    results = ft800.probe.set_parameters('/ft', {'port': '/dev/ttyUSB9'})
    assert results[0][0] is False and 'unconfigured' in results[0][1]
    assert ft800.probe.set_parameters('/ft', {'frame_id': 'tool0'}) == [(True, '')]
    wait_until(lambda: ft800.wrench.snapshot()[0][-1].header.frame_id == 'tool0', 2, 'frame_id')
    assert ft800.probe.set_parameters('/ft', {'frame_id': 'ft_sensor'}) == [(True, '')]


def test_tare_zeroes_the_mean(ft800):
    ft800.wrench.clear()
    time.sleep(1.0)
    before = [wrench_tuple(m) for m in ft800.wrench.snapshot()[0]]
    assert statistics.fmean(w[2] for w in before) == pytest.approx(-20, abs=0.5)
    response = ft800.probe.call(Trigger, '/ft/tare', Trigger.Request())
    assert response.success, response.message
    tared_ns = time.time_ns()
    time.sleep(1.0)
    # The probe may still be working through older samples: keep those stamped after the tare
    # answered (a stamp is never later than the node received the sample).
    after = [wrench_tuple(m) for m in ft800.wrench.snapshot()[0]
             if m.header.stamp.sec * 10**9 + m.header.stamp.nanosec > tared_ns]
    assert len(after) > 400
    # The static -20 N load is gone. What is left are the simulated sinusoids (amplitudes 2 N,
    # 1.5 N, 0.5 N, 0.1 Nm), whose means over the tare window and over this second are not zero.
    offset = [float(v) for v in response.message.split('offset ')[1].split()]
    assert offset[2] == pytest.approx(-20, abs=0.5)
    for axis, bound in enumerate((2.0, 1.5, 0.6, 0.1, 0.1, 0.01)):
        assert abs(statistics.fmean(w[axis] for w in after)) < bound, f'axis {axis}'
