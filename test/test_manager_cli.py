"""`sensor-workers up`, `bridge` and `status` as a user runs them."""

import os
from pathlib import Path
import signal
import socket
import sys
import time

import httpx
from manager_helpers import descendants, gone, write_config
import psutil
import pytest

from sensor_workers.testing.processes import ManagedProcess, ProcessGroup
from sensor_workers.testing.waiting import wait_until

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def ft_cell_config(tmp_path: Path) -> tuple[Path, int]:
    """Write a config of an F/T-only cell whose bridge listens on a free port."""
    port = free_port()
    config = write_config(tmp_path, {'devices': ['ft']},
                          {'bridge': {'host': '127.0.0.1', 'port': port}})
    return config, port


def cli(procs: ProcessGroup, name: str, *args: str) -> ManagedProcess:
    """Start `sensor-workers <args>` as a user runs it."""
    return procs.start(name, [sys.executable, '-m', 'sensor_workers.cli', *args])


def test_up_starts_and_ctrl_c_stops_everything(procs, tmp_path):
    config, _ = ft_cell_config(tmp_path)
    up = cli(procs, 'up', 'up', '--config', str(config))
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


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGKILL])
def test_ending_up_ends_every_process_it_started_within_2_s(procs, tmp_path, signum):
    # SIGTERM: what systemd and most supervisors send; SIGKILL: up cannot clean up at all, and
    # its children follow it by their parent-death signal (lifetime.py).
    config, _ = ft_cell_config(tmp_path)
    up = cli(procs, 'up', 'up', '--config', str(config))
    up.wait_for_output(r'\[manager\]: ft: active', timeout=60)
    wait_until(lambda: any('standby' in ' '.join(p.cmdline()) for p in descendants(up.pid)), 30,
               'the warm standby')
    children = descendants(up.pid)  # manager, bridge, simulator, worker, standby
    assert len(children) >= 5, children
    ending = time.monotonic()
    up.signal(signum)
    wait_until(lambda: gone(children), 2, f'every process of the cell gone after {signum.name}')
    print(f'{signum.name}: {len(children)} processes gone in {time.monotonic() - ending:.2f} s')
    if signum == signal.SIGTERM:
        assert up.popen.wait(5) == 0, up.tail()


def test_up_runs_the_simulated_sensor_as_a_device_that_outlives_its_worker(procs, tmp_path):
    config, _ = ft_cell_config(tmp_path)
    up = cli(procs, 'up', 'up', '--config', str(config))
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


def _health(port: int) -> int:
    try:
        return httpx.get(f'http://127.0.0.1:{port}/health', timeout=1).status_code
    except httpx.HTTPError:
        return 0


def _active_worker(up_pid: int) -> int | None:
    """Return the PID of the F/T worker (not its warm standby), or None."""
    return next((p.pid for p in descendants(up_pid)
                 if 'sensor_workers.ft.node' in ' '.join(p.cmdline())
                 and 'standby' not in ' '.join(p.cmdline())), None)


def test_up_restarts_a_killed_bridge_and_leaves_the_workers_alone(procs, tmp_path):
    config, port = ft_cell_config(tmp_path)
    up = cli(procs, 'up', 'up', '--config', str(config))
    first = int(up.wait_for_output(r'bridge pid (\d+)', timeout=20).group(1))
    up.wait_for_output(r'\[manager\]: ft: active', timeout=60)
    wait_until(lambda: _health(port) == 200, 30, 'the bridge answers /health')
    worker = _active_worker(up.pid)
    assert worker is not None

    for kill in range(2):  # the second kill: the restart after a restart works too
        bridge = psutil.Process(first)
        os.kill(first, signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda b=bridge: gone([b]), 5, 'the killed bridge is gone')
        wait_until(lambda: _health(port) == 200, 5, '/health answers again')
        print(f'kill {kill + 1}: /health answered {time.monotonic() - killed:.2f} s after '
              'the kill -9 of the bridge')
        match = up.wait_for_output(rf'bridge: active again \(restart {kill + 1}\) '
                                   r'\(pid (\d+)\)', timeout=5)
        first = int(match.group(1))

    assert 'bridge: exited with code -9; restarting in ' in up.output()
    assert _active_worker(up.pid) == worker, 'the worker was restarted'
    assert up.output().count('[manager]: ft: active') == 1, up.tail()
    up.signal(signal.SIGINT)
    assert up.popen.wait(20) == 0, up.tail()


def test_split_cell_up_without_bridge_and_the_bridge_alone(procs, tmp_path):
    config, port = ft_cell_config(tmp_path)
    cell = cli(procs, 'up', 'up', '--no-bridge', '--config', str(config))
    cell.wait_for_output(r'bridge: not started here \(--no-bridge\)', timeout=20)
    cell.wait_for_output(r'\[manager\]: ft: active', timeout=60)
    assert not any('sensor_workers.bridge' in ' '.join(p.cmdline())
                   for p in descendants(cell.pid))
    bridge = cli(procs, 'bridge', 'bridge', '--config', str(config))
    bridge.wait_for_output(rf'bridge pid \d+: http://127.0.0.1:{port}/', timeout=20)

    def ft_active() -> bool:
        answer = httpx.get(f'http://127.0.0.1:{port}/status', timeout=1).json()
        return answer['devices']['ft']['state'] == 'active'

    wait_until(ft_active, 30, "the bridge shows the other process's ft worker active",
               tolerate=(httpx.HTTPError, KeyError))
    for process in (bridge, cell):
        process.signal(signal.SIGINT)
        assert process.popen.wait(20) == 0, process.tail()


def test_status_says_clearly_when_the_bridge_is_not_running(procs, tmp_path):
    config, port = ft_cell_config(tmp_path)
    status = cli(procs, 'status', 'status', '--config', str(config))
    assert status.popen.wait(20) == 1
    assert f'the bridge is not running at http://127.0.0.1:{port}' in status.output()
