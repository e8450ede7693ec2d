"""The harness itself: isolated domains, process control, the probe node over real DDS."""

import os
import signal
import socket
import sys
import time

import psutil
import pytest
from std_msgs.msg import String

from sensor_workers.testing.processes import live_descendants
from sensor_workers.testing.ros_env import isolated_ros_environment, pick_domain_id
from sensor_workers.testing.waiting import wait_until


def test_environment_is_isolated(ros_env):
    assert os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert 1 <= int(os.environ['ROS_DOMAIN_ID']) <= 101
    assert os.path.isfile(os.environ['FASTDDS_DEFAULT_PROFILES_FILE'])


def test_domains_are_not_shared_within_a_process():
    first, second = pick_domain_id(), pick_domain_id()
    assert first != second
    assert int(os.environ['ROS_DOMAIN_ID']) not in (first, second)


def test_domain_with_busy_port_is_skipped(monkeypatch):
    busy = pick_domain_id()
    monkeypatch.setattr('random.shuffle', lambda ids: ids.sort(key=lambda d: d != busy + 1))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(('127.0.0.1', 7400 + 250 * (busy + 1) + 10))
        env = isolated_ros_environment()
    assert env['ROS_DOMAIN_ID'] != str(busy + 1)


def test_process_output_is_awaited_and_process_stopped(procs):
    child = procs.start('echo', [sys.executable, '-c',
                                 'import time; print("ready", flush=True); time.sleep(60)'])
    child.wait_for_output('^ready$', timeout=10)
    assert child.alive()
    assert child.stop(timeout=5) == -signal.SIGTERM
    assert not child.alive()


def test_sigterm_ignoring_process_is_killed(procs):
    code = ('import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); '
            'print("up", flush=True); time.sleep(60)')
    child = procs.start('stubborn', [sys.executable, '-c', code])
    child.wait_for_output('up', timeout=10)
    started = time.monotonic()
    assert child.stop(timeout=0.5) == -signal.SIGKILL
    assert time.monotonic() - started < 5


def test_orphans_are_adopted_and_visible(procs):
    # A parent that starts a grandchild and dies: the grandchild must not escape the check.
    code = ('import subprocess, sys; '
            'p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]); '
            'print(p.pid, flush=True)')
    parent = procs.start('parent', [sys.executable, '-c', code])
    grandchild_pid = int(parent.wait_for_output(r'^(\d+)$', timeout=10).group(1))
    parent.popen.wait(10)
    assert grandchild_pid in [p.pid for p in live_descendants()]
    os.kill(grandchild_pid, signal.SIGKILL)
    wait_gone(grandchild_pid, 5)


def test_probe_talks_to_another_process_over_dds(procs, probe):
    received = probe.collect(String, '/harness/chatter')
    talker = ('import rclpy, time; from std_msgs.msg import String; rclpy.init(); '
              'n = rclpy.create_node("talker"); '
              'p = n.create_publisher(String, "/harness/chatter", 10)\n'
              'for i in range(300):\n'
              '    p.publish(String(data=str(i))); time.sleep(0.01)\n')
    procs.start('talker', [sys.executable, '-c', talker])
    deadline = time.monotonic() + 15
    while received.count() < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    messages, _ = received.snapshot()
    assert len(messages) >= 20
    values = [int(m.data) for m in messages]
    assert values == sorted(values)


def wait_gone(pid: int, timeout: float) -> None:
    """Wait until `pid` is no longer a live descendant of this process; fail after `timeout`."""
    wait_until(lambda: pid not in [p.pid for p in live_descendants()], timeout,
               f'pid {pid} gone', period=0.02)


def test_child_dies_with_its_parent(procs):
    # The parent starts a child that calls die_with_parent(), prints its pid, then is SIGKILLed.
    child_code = ('from sensor_workers.lifetime import die_with_parent; import time; '
                  'die_with_parent(); print("armed", flush=True); time.sleep(60)')
    parent_code = ('import subprocess, sys, time; from sensor_workers.lifetime import '
                   'child_environment; import os\n'
                   f'p = subprocess.Popen([sys.executable, "-c", {child_code!r}], '
                   'env={**os.environ, **child_environment()}, '
                   'stdout=subprocess.PIPE, text=True)\n'
                   'p.stdout.readline(); print(p.pid, flush=True); time.sleep(60)\n')
    parent = procs.start('parent', [sys.executable, '-c', parent_code])
    child_pid = int(parent.wait_for_output(r'^(\d+)$', timeout=15).group(1))
    parent.signal(signal.SIGKILL)
    wait_gone(child_pid, 2.0)


SLEEPER = [sys.executable, '-c', 'import time; time.sleep(60)']


def test_a_command_that_never_arms_the_tie_dies_with_its_starter(procs):
    # A benchmark's probe, node or `python -c` started by the harness in a process that is then
    # SIGKILLed (as pytest may be, by the OOM killer): the harness tied the command itself.
    starts = ('from sensor_workers.testing.processes import ProcessGroup\n'
              f'child = ProcessGroup(Path(sys.argv[1])).start("sleeper", {SLEEPER!r})')
    sleeper_dies_with_its_starter(procs, starts, str(procs.log_dir))


@pytest.mark.parametrize('use_setpriv', [True, False])
def test_a_starter_killed_before_the_tie_is_armed_takes_the_command_along(procs, use_setpriv):
    # The starter dies right after the fork, before the prctl: the kernel then has no parent
    # death to report, and only the check of the parent's PID keeps the command from running on.
    starts = ('from sensor_workers import lifetime\n'
              f'child = subprocess.Popen(lifetime.tied_command({SLEEPER!r}, {use_setpriv}))\n'
              'print(child.pid, flush=True); os.kill(os.getpid(), signal.SIGKILL)')
    parent_code = f'import os, signal, subprocess\n{starts}\n'
    parent = procs.start('parent', [sys.executable, '-c', parent_code])
    child_pid = int(parent.wait_for_output(r'^(\d+)$', timeout=15).group(1))
    assert parent.popen.wait(10) == -signal.SIGKILL
    wait_gone(child_pid, 2.0)


def test_the_tie_without_setpriv_holds_too(procs):
    # Where util-linux's setpriv is missing, lifetime.py itself arms the tie, then execs.
    starts = ('from sensor_workers import lifetime\n'
              f'child = subprocess.Popen(lifetime.tied_command({SLEEPER!r}, use_setpriv=False))')
    sleeper_dies_with_its_starter(procs, starts)


def sleeper_dies_with_its_starter(procs, starts: str, *args: str) -> None:
    """Run `starts` (it sets `child`) in a process, SIGKILL that process, see the sleeper end."""
    parent_code = ('import subprocess, sys, time; from pathlib import Path\n'
                   f'{starts}\nprint(child.pid, flush=True); time.sleep(60)\n')
    parent = procs.start('parent', [sys.executable, '-c', parent_code, *args])
    child_pid = int(parent.wait_for_output(r'^(\d+)$', timeout=15).group(1))
    # Past the exec: the sleeper, not what ties it, is what runs now (their command lines hold
    # the sleeper's too, and what ties it may not have armed the tie yet).
    wait_until(lambda: psutil.Process(child_pid).cmdline() == SLEEPER, 5, 'the sleeper running')
    parent.signal(signal.SIGKILL)
    wait_gone(child_pid, 2.0)


def test_child_whose_parent_died_before_the_tie_ends_itself(procs):
    # The PID of a process that is gone (reaped): the tie's parent died before the prctl.
    dead = procs.start('dead', [sys.executable, '-c', 'pass'])
    dead.popen.wait(10)
    child = procs.start('child', [sys.executable, '-c',
                                  'import os, time; from sensor_workers import lifetime; '
                                  f'os.environ[lifetime.PARENT_PID_ENV] = "{dead.pid}"; '
                                  'lifetime.die_with_parent(); time.sleep(30)'])
    assert child.popen.wait(10) == -signal.SIGTERM


def test_a_wrapper_between_parent_and_child_keeps_the_tie(procs):
    # `ros2 launch --launch-prefix ...` puts a wrapper between the launch process (which set the
    # tie) and the node: the node keeps running, and dies with the wrapper.
    child_code = ('from sensor_workers.lifetime import die_with_parent; import time; '
                  'die_with_parent(); print("armed", flush=True); time.sleep(60)')
    wrapper_code = ('import subprocess, sys, time\n'
                    f'p = subprocess.Popen([sys.executable, "-c", {child_code!r}], '
                    'stdout=subprocess.PIPE, text=True)\n'
                    'p.stdout.readline(); print(p.pid, flush=True); time.sleep(60)\n')
    # The harness sets the tie to pytest's PID; the wrapper passes it on without arming it.
    wrapper = procs.start('wrapper', [sys.executable, '-c', wrapper_code])
    child_pid = int(wrapper.wait_for_output(r'^(\d+)$', timeout=15).group(1))
    time.sleep(0.5)
    assert child_pid in [p.pid for p in live_descendants()], 'the child ended itself'
    wrapper.signal(signal.SIGKILL)
    wait_gone(child_pid, 2.0)
