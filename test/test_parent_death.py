"""Every process a test starts dies with the test run, even when the run is SIGKILLed.

A stand-in for pytest starts the process through `ManagedProcess` (the harness every test uses)
and is then SIGKILLed, as the kernel's OOM killer would: the process and its own children must
be gone within 2 s.
"""

import os
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from sensor_workers.testing.processes import is_gone
from sensor_workers.testing.waiting import wait_until

pytestmark = pytest.mark.integration

STAND_IN = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from sensor_workers.testing.processes import ManagedProcess
    child = ManagedProcess('child', [sys.executable, '-m', *sys.argv[2:]], Path(sys.argv[1]))
    print(child.pid, flush=True)
    time.sleep(600)
""")


def tree(pid: int) -> list[int]:
    try:
        process = psutil.Process(pid)
        return [pid] + [c.pid for c in process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


@pytest.mark.parametrize(('module', 'ready', 'processes'), [
    # The manager and the workers it spawns (and their warm standbys).
    (['sensor_workers.manager.node', '--ros-args', '-p', 'devices:=[ft]'],
     '[manager]: ft: active', 2),
    (['sensor_workers.bridge', '--ros-args', '-p', 'port:=0'], 'listening on', 1),
], ids=['manager', 'bridge'])
def test_a_sigkilled_test_run_takes_its_processes_along(tmp_path, ros_env, module, ready,
                                                         processes):
    stand_in = subprocess.Popen(
        [sys.executable, '-c', STAND_IN, str(tmp_path), *module], stdout=subprocess.PIPE,
        env={**os.environ, **ros_env}, text=True)
    try:
        child = int(stand_in.stdout.readline())
        log = tmp_path / 'child.log'
        wait_until(lambda: log.is_file() and ready in log.read_text(), 60, ready)
        started = tree(child)
        assert len(started) >= processes, log.read_text()
        stand_in.kill()
        stand_in.wait(5)
        killed_at = time.monotonic()
        wait_until(lambda: all(is_gone(pid) for pid in started), 5,
                   'the processes of the killed run to exit')
        assert time.monotonic() - killed_at < 2.0
    finally:
        if stand_in.poll() is None:
            stand_in.kill()
            stand_in.wait(5)
