"""RespawnedProcess: real child processes, a fake clock for the restart delays."""

import logging
import subprocess
import sys

import pytest

from sensor_workers.manager.policy import PolicyConfig
from sensor_workers.respawn import RespawnedProcess

CONFIG = PolicyConfig(backoff_initial_s=1.0, backoff_max_s=4.0, backoff_reset_s=10.0,
                      degraded_after_failures=3, failure_window_s=30.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def spawned() -> list[subprocess.Popen]:
    processes: list[subprocess.Popen] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()


def _spawner(spawned: list[subprocess.Popen], code: str):
    def spawn() -> subprocess.Popen:
        spawned.append(subprocess.Popen([sys.executable, '-c', code]))  # noqa: S603
        return spawned[-1]
    return spawn


def _exit_seen(respawned: RespawnedProcess) -> None:
    respawned.process.wait(10)
    respawned.tick()
    assert respawned.process is None


def test_a_dead_process_comes_back_after_growing_delays_then_degraded(spawned, caplog):
    caplog.set_level(logging.WARNING)
    clock = Clock()
    respawned = RespawnedProcess('crasher', _spawner(spawned, 'raise SystemExit(3)'), CONFIG,
                                 clock)
    respawned.start()
    assert len(spawned) == 1
    for delay in (1.0, 2.0):
        _exit_seen(respawned)
        clock.now += delay - 0.01
        respawned.tick()
        assert respawned.process is None, 'restarted before its delay'
        clock.now += 0.01
        respawned.tick()
        assert respawned.process is spawned[-1]
    assert respawned.restarts == 2
    _exit_seen(respawned)  # the third failure within the window
    assert 'crasher: 3 failures within 30 s (last: exited with code 3); retrying every ' \
        '4000 ms' in caplog.text
    assert 'crasher: exited with code 3; restarting in 1000 ms' in caplog.text
    assert 'crasher: active again (restart 1) (pid ' in caplog.text


def test_a_stable_process_restarts_at_the_initial_delay_again(spawned):
    clock = Clock()
    respawned = RespawnedProcess('server', _spawner(spawned, 'import time; time.sleep(60)'),
                                 CONFIG, clock)
    respawned.start()
    for _ in range(2):
        respawned.process.kill()
        _exit_seen(respawned)
        clock.now += CONFIG.backoff_max_s
        respawned.tick()
    assert respawned.policy.backoff_s == 2.0
    clock.now += CONFIG.failure_window_s  # longer than backoff_reset_s
    respawned.tick()  # stable long enough: the failures are forgotten
    respawned.process.kill()
    _exit_seen(respawned)
    assert respawned.policy.backoff_s == CONFIG.backoff_initial_s


def test_stop_supervising_hands_over_the_running_process_and_restarts_no_more(spawned):
    clock = Clock()
    respawned = RespawnedProcess('server', _spawner(spawned, 'import time; time.sleep(60)'),
                                 CONFIG, clock)
    respawned.start()
    process = respawned.stop_supervising()
    assert process is spawned[0] and process.poll() is None
    process.kill()
    process.wait()
    clock.now += 60
    respawned.tick()
    assert len(spawned) == 1


def test_a_process_that_cannot_be_spawned_is_retried(tmp_path):
    clock = Clock()
    missing = tmp_path / 'no_such_program'
    respawned = RespawnedProcess('missing', lambda: subprocess.Popen([str(missing)]),  # noqa: S603
                                 CONFIG, clock)
    respawned.start()
    assert respawned.process is None
    assert respawned.policy.failures == 1
    clock.now += CONFIG.backoff_initial_s
    respawned.tick()
    assert respawned.policy.failures == 2
