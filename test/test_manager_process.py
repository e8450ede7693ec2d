"""The process layer without ROS: command, environment, tuning, reaping, SIGKILL escalation."""

from concurrent.futures import Future
import dataclasses
import os
from pathlib import Path
import signal
import sys
import threading
import time

import psutil
import pytest

from sensor_workers import lifetime, paths
from sensor_workers.manager.process import Spawner, WorkerSpec, parse_env


def test_command_and_environment():
    spec = WorkerSpec('ft2', 'sensor_workers.ft.node', paths.config_file('sim.yaml'),
                      {'heartbeat_period_ms': '50'}, {'PYLON_CAMEMU': '1'})
    assert spec.command() == [
        sys.executable, '-m', 'sensor_workers.ft.node', '--ros-args', '-r', '__node:=ft2',
        '--params-file', str(paths.config_file('sim.yaml')), '-p', 'heartbeat_period_ms:=50']
    env = spec.environment()
    assert env['PYLON_CAMEMU'] == '1'
    assert env['FASTDDS_DEFAULT_PROFILES_FILE'] == str(paths.fastdds_profile())
    assert env[lifetime.PARENT_PID_ENV] == str(os.getpid())
    assert env.get('LD_LIBRARY_PATH') == os.environ.get('LD_LIBRARY_PATH')


def test_the_log_level_goes_to_the_worker_logger_only():
    spec = WorkerSpec('camera', 'sensor_workers.camera.node', log_level='debug')
    assert spec.command()[-2:] == ['--log-level', 'camera:=debug']
    assert '--log-level' not in WorkerSpec('camera', 'sensor_workers.camera.node').command()


def test_parse_env():
    assert parse_env(['A=1', 'B=x=y', 'C=']) == {'A': '1', 'B': 'x=y', 'C': ''}
    with pytest.raises(ValueError, match='not KEY=value'):
        parse_env(['NOVALUE'])


def sleeper(spawner: Spawner, spec: WorkerSpec, exits: list):
    done = threading.Event()

    def on_exit(process, code):
        exits.append((process.pid, code, time.monotonic()))
        done.set()

    future: Future = spawner.spawn(spec, on_exit)
    process, warnings = future.result(timeout=10)
    return process, warnings, done


# A stand-in module that just sleeps (test/sleep_forever.py, not shipped with the package).
SLEEPER = WorkerSpec('sleeper', 'sleep_forever', env={'PYTHONPATH': str(Path(__file__).parent)})


@pytest.fixture
def spawner():
    spawner = Spawner()
    yield spawner
    spawner.close()


def test_spawn_tune_and_exit_noticed_at_once(spawner):
    cpus = sorted(os.sched_getaffinity(0))[:1]
    spec = dataclasses.replace(SLEEPER, cpu_affinity=cpus, nice=5)
    exits: list = []
    process, warnings, done = sleeper(spawner, spec, exits)
    assert warnings == []
    assert os.sched_getaffinity(process.pid) == set(cpus)
    assert os.getpriority(os.PRIO_PROCESS, process.pid) == 5
    killed = time.monotonic()
    process.kill()
    assert done.wait(5)
    pid, code, noticed = exits[0]
    assert (pid, code) == (process.pid, -signal.SIGKILL)
    assert noticed - killed < 0.5


def test_refused_settings_are_reported(spawner):
    spec = dataclasses.replace(SLEEPER, cpu_affinity=(4096,))
    exits: list = []
    process, warnings, done = sleeper(spawner, spec, exits)
    assert len(warnings) == 1
    assert 'cpu_affinity [4096] refused' in warnings[0]
    process.kill()
    assert done.wait(5)


def test_sigterm_ignored_escalates_and_stopped_process_killed_at_once(spawner):
    exits: list = []
    process, _, done = sleeper(spawner, SLEEPER, exits)
    time.sleep(0.5)  # let it install its SIGTERM-ignoring handler
    process.terminate(0.3)
    assert done.wait(5)
    assert exits[0][1] == -signal.SIGKILL

    exits.clear()
    process, _, done = sleeper(spawner, SLEEPER, exits)
    os.kill(process.pid, signal.SIGSTOP)
    time.sleep(0.1)
    assert process.stopped()
    started = time.monotonic()
    process.terminate(10.0)
    assert done.wait(5)
    assert time.monotonic() - started < 1.0
    assert exits[0][1] == -signal.SIGKILL


@pytest.mark.integration
def test_the_managers_log_level_reaches_its_workers_and_not_rcl(procs):
    manager = procs.start_python('manager', 'sensor_workers.manager.node', '--ros-args',
                                 '-p', 'devices:=[ft]', '--log-level', 'manager:=debug')
    started = manager.wait_for_output(r'\[manager\]: ft: started pid (\d+)', timeout=60)
    worker = psutil.Process(int(started.group(1)))
    assert worker.cmdline()[-2:] == ['--log-level', 'ft:=debug']
    manager.wait_for_output(r'\[manager\]: ft: active', timeout=60)
    manager.wait_for_output(r'\[DEBUG\] .*\[manager\]', timeout=30)
    assert '[rcl]' not in manager.output()
