"""A worker whose device cannot be opened: growing delays, then degraded; the other one unharmed.

Then SIGTERM to the manager: every worker deactivated and stopped, no process left.
"""

import re
import signal
import statistics
import time

from diagnostic_msgs.msg import DiagnosticStatus
from manager_helpers import Watch, descendants, gone, start_manager, write_config
import pytest

from sensor_workers import qos
from sensor_workers.diagnostics import status_values
from sensor_workers.testing.ros_probe import RosProbe
from sensor_workers.testing.waiting import wait_until

pytestmark = pytest.mark.integration

FT_RATE_HZ = 51200 / 51  # sinc_length 51 in sim.yaml


def test_unopenable_device_degrades_alone_and_sigterm_leaves_nothing(procs, tmp_path):
    probe = RosProbe('degraded_probe')
    try:
        watch = Watch.attach(probe)
        heartbeats = probe.collect(DiagnosticStatus, '/ft/heartbeat', qos.HEARTBEAT)
        config = write_config(tmp_path, {
            'devices': ['ft', 'ft_bad'],
            # Far above the defaults (300 ms, 2 s): this test is about isolation from the failing
            # worker's churn; on an overloaded 2-core machine (load 18 seen) a healthy worker
            # starved by foreign load can miss 1 s, which is not what is tested here.
            'heartbeat_timeout_ms': 3000, 'stall_timeout_ms': 5000,
            'start_timeout_ms': 60000,
            'ft_bad': {'module': 'sensor_workers.ft.node'},
            'restart_backoff_initial_ms': 100, 'restart_backoff_max_ms': 800,
            'degraded_after_failures': 3, 'failure_window_s': 120.0,
        }, {'ft_bad': {'port': str(tmp_path / 'no_such_port')}})
        manager = start_manager(procs, config)
        # From here on ft must not notice anything. (Its own start may have needed retries: on
        # an overloaded machine DDS participant creation has been seen to block for > 10 s.)
        healthy = watch.wait_active(['ft'], timeout=90)['ft']
        healthy_from = time.monotonic()
        try:
            degraded = wait_until(lambda: watch.event_list('ft_bad', 'degraded'), 60, 'degraded')
        except TimeoutError:
            pytest.fail(f'ft_bad never degraded:\n{manager.tail(60)}')
        assert degraded[0][1] == 2  # ERROR
        # The first retry at the maximum delay, still degraded.
        wait_until(lambda: len({v['pid'] for _, v in watch.history('ft_bad')} - {'0'}) >= 4,
                   30, 'a retry after degraded')
        state = watch.state('ft_bad')
        assert state['degraded'] == 'true'
        assert state['level'] == '2'
        assert 'configure failed' in state['last_error']

        # Delays grow: 100, 200 ms, then the maximum once degraded.
        backoffs = []
        for _, values in watch.history('ft_bad'):
            backoff = int(values['backoff_ms'])
            if values['state'] in ('restarting', 'degraded') and backoff and (
                    not backoffs or backoffs[-1] != backoff):
                backoffs.append(backoff)
        assert backoffs[:3] == [100, 200, 800]
        # And they are honoured: the next process starts no earlier than the delay (manager log).
        log = [(float(m.group(1)), m.group(2)) for m in re.finditer(
            r'^\[\w+\] \[(\d+\.\d+)\] \[manager\]: ft_bad: (.*)$', manager.output(), re.M)]
        failed_at = None
        checked = 0
        for stamp, text in log:
            if text.startswith(('restarting:', 'degraded:')):
                failed_at, delay = stamp, int(re.search(r'(\d+) ms$', text).group(1)) / 1000
            elif text.startswith('started pid') and failed_at is not None:
                assert stamp - failed_at >= 0.95 * delay, text
                checked += 1
                failed_at = None
        assert checked >= 3

        # The healthy worker never noticed: its own rate (from its heartbeats, not what a busy
        # test process manages to receive) stayed at the sensor's rate, and it was never restarted.
        assert watch.state('ft')['state'] == 'active'
        assert watch.state('ft')['restarts'] == healthy['restarts']
        assert watch.state('ft')['pid'] == healthy['pid']
        # ft_bad has failed all along, degraded and retried since: the whole window counts (it
        # can degrade within a second of ft being active now that workers start themselves).
        beats, arrival = heartbeats.snapshot()
        rates = [float(status_values(b)['rate_hz']) for b, t in zip(beats, arrival, strict=True)
                 if t >= healthy_from + 0.5]
        assert len(rates) >= 10
        print(f'healthy ft while ft_bad failed: rate_hz median {statistics.median(rates):.0f}, '
              f'min {min(rates):.0f} ({FT_RATE_HZ:.0f} nominal, {len(rates)} heartbeats)')
        # Measured 1003-1004 Hz median on a 2-core machine at load ~4; generous for CI, where
        # foreign load (18 on 2 cores seen) starves the simulator and worker themselves.
        assert statistics.median(rates) > 0.5 * FT_RATE_HZ

        # SIGTERM: workers deactivated and stopped (exit 0 is no crash), nothing left behind.
        children = descendants(manager.pid)
        assert children
        stop_at = time.monotonic()
        manager.signal(signal.SIGTERM)
        assert manager.popen.wait(15) == 0
        wait_until(lambda: gone(children), 5, 'every worker and its children gone')
        wait_until(lambda: watch.state('ft').get('state') == 'stopped', 5, 'ft stopped')
        assert not watch.event_list('ft', 'exited', stop_at)
        print(f'manager stopped {len(children)} processes in {time.monotonic() - stop_at:.2f} s')
    finally:
        probe.close()
