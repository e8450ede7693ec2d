"""`sensor-workers up` and `sensor-workers status` as a user runs them."""

import signal
import socket
import sys
import time

from manager_helpers import descendants, gone, write_config
import psutil
import pytest

from sensor_workers.testing.waiting import wait_until

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_up_starts_and_ctrl_c_stops_everything(procs, tmp_path):
    config = write_config(tmp_path, {'devices': ['ft']},
                          {'bridge': {'host': '127.0.0.1', 'port': free_port()}})
    up = procs.start('up', [sys.executable, '-m', 'sensor_workers.cli', 'up',
                            '--config', str(config)])
    up.wait_for_output(r'manager pid \d+: devices ft', timeout=20)
    up.wait_for_output(r'\[manager\]: ft: active', timeout=60)
    children = descendants(up.pid)
    assert len(children) >= 2  # manager, ft worker (and its simulator, the bridge if present)
    stopping = time.monotonic()
    up.signal(signal.SIGINT)
    assert up.popen.wait(20) == 0, up.tail()
    wait_until(lambda: gone(children), 5, 'no process left')
    print(f'sensor-workers up stopped {len(children)} processes in '
          f'{time.monotonic() - stopping:.2f} s')


def test_up_runs_the_simulated_sensor_as_a_device_that_outlives_its_worker(procs, tmp_path):
    config = write_config(tmp_path, {'devices': ['ft']},
                          {'bridge': {'host': '127.0.0.1', 'port': free_port()}})
    up = procs.start('up', [sys.executable, '-m', 'sensor_workers.cli', 'up',
                            '--config', str(config)])
    sim_pid = int(up.wait_for_output(r'simulated F/T sensor pid (\d+) on ', timeout=20).group(1))
    up.wait_for_output(r'\[manager\]: ft: active', timeout=60)
    sim = psutil.Process(sim_pid)
    assert sim.ppid() == up.pid  # a device of its own, not the worker's child

    def worker() -> psutil.Process | None:
        return next((p for p in descendants(up.pid)
                     if 'sensor_workers.ft.node' in ' '.join(p.cmdline())
                     and 'standby' not in ' '.join(p.cmdline())), None)

    first = wait_until(worker, 10, 'the ft worker')
    assert not any('sensor_workers.ft.sim' in ' '.join(c.cmdline()) for c in first.children())
    first.kill()
    wait_until(lambda: up.output().count('[manager]: ft: active') >= 2, 30,
               'ft active again')
    assert sim.is_running() and sim.status() != psutil.STATUS_ZOMBIE
    up.signal(signal.SIGINT)
    assert up.popen.wait(20) == 0, up.tail()
    wait_until(lambda: gone([sim]), 5, 'the simulator stopped with up')


def test_status_says_clearly_when_the_bridge_is_not_running(procs, tmp_path):
    port = free_port()
    config = write_config(tmp_path, {'devices': ['ft']},
                          {'bridge': {'host': '127.0.0.1', 'port': port}})
    status = procs.start('status', [sys.executable, '-m', 'sensor_workers.cli', 'status',
                                    '--config', str(config)])
    assert status.popen.wait(20) == 1
    assert f'the bridge is not running at http://127.0.0.1:{port}' in status.output()
