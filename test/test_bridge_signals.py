"""The bridge ends cleanly on SIGTERM/SIGINT at any moment of its life.

`systemctl stop`, `ros2 launch` shutdown and Ctrl-C all rely on a prompt exit 0, during start-up
(imports, rclpy init, uvicorn start, the lifespan) as much as while serving or stopping.
"""

import signal
import subprocess
import time

import httpx
import pytest

from sensor_workers.testing.processes import ManagedProcess, ProcessGroup
from sensor_workers.testing.waiting import wait_until

pytestmark = pytest.mark.integration

EXIT_BOUND_S = 5.0
LISTENING = r'listening on (http://[0-9.]+:\d+)'


def start_bridge(procs: ProcessGroup, name: str) -> ManagedProcess:
    return procs.start_python(name, 'sensor_workers.bridge', '--ros-args', '-p', 'port:=0')


def exit_code_after(process: ManagedProcess, signum: int) -> int:
    process.signal(signum)
    try:
        return process.popen.wait(EXIT_BOUND_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f'{process.name} still running {EXIT_BOUND_S} s after '
                    f'{signal.Signals(signum).name}:\n{process.tail()}')


@pytest.mark.parametrize('delay_s', [0.0, 0.2, 0.5, 1.0, 1.5])
@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_starting_is_a_clean_exit(procs, signum, delay_s):
    # Right after spawn, during the imports (~0.8 s; launch stopping a bridge it just respawned
    # hits them), rclpy init and the node's set-up, around `listening`.
    bridge = start_bridge(procs, f'bridge_{signum}_{delay_s}')
    time.sleep(delay_s)
    code = exit_code_after(bridge, signum)
    if delay_s == 0.0:
        # The interpreter's own first ~70 ms, before any line of ours: its default action.
        assert code in (0, -signum), bridge.tail()
    else:
        assert code == 0, bridge.tail()
        assert 'Traceback' not in bridge.output(), bridge.tail()


@pytest.mark.parametrize('after_s', [0.0, 0.05, 0.3])
@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_signal_around_listening_is_a_clean_exit(procs, after_s, signum):
    bridge = start_bridge(procs, f'bridge_{signum}_{after_s}')
    bridge.wait_for_output(LISTENING, timeout=30)
    time.sleep(after_s)
    assert exit_code_after(bridge, signum) == 0, bridge.tail()


def test_sigterm_while_serving_and_a_second_one_while_stopping(procs):
    bridge = start_bridge(procs, 'bridge_serving')
    url = bridge.wait_for_output(LISTENING, timeout=30).group(1)
    wait_until(lambda: httpx.get(f'{url}/health', timeout=2).status_code == 200, 15,
               'bridge /health', tolerate=(httpx.HTTPError,))
    bridge.signal(signal.SIGTERM)
    time.sleep(0.1)  # the lifespan is stopping
    assert exit_code_after(bridge, signal.SIGTERM) == 0, bridge.tail()
