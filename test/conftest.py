"""The harness every test uses: a private ROS domain on loopback, managed processes, no orphans."""

from collections.abc import Iterator
import logging
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys

import pytest

from sensor_workers.shm_segments import remove_dead_segments, remove_unheld_ports
from sensor_workers.side_channel.cleanup import remove_dead_channels
from sensor_workers.testing.memory import MemoryWatch
from sensor_workers.testing.processes import ProcessGroup, become_subreaper, live_descendants
from sensor_workers.testing.ros_env import apply_isolated_ros_environment

# Before any test creates a DDS participant: this run's own domain, discovery on loopback only.
ROS_ENV = apply_isolated_ros_environment()
log = logging.getLogger(__name__)
# No process of the suite may grow past this (a probe that kept every frame grew pytest to
# 23 GB and the kernel OOM-killed the run).
RSS_BOUND_BYTES = 2 << 30
MEMORY = MemoryWatch(RSS_BOUND_BYTES)


def pytest_configure(config: pytest.Config) -> None:
    # Children of a process killed in a test (a SIGKILLed manager's workers) are re-parented to
    # pytest, so the orphan check below sees them.
    become_subreaper()
    _default_signal_dispositions()
    MEMORY.start()


def _default_signal_dispositions() -> None:
    """Start the suite's processes with SIGINT and SIGQUIT at their defaults, as launch does.

    An ignored signal stays ignored across exec, and a shell without job control (a script's
    `make test &`, nohup'd runs) starts its background jobs with SIGINT and SIGQUIT ignored.
    Started that way, the bridge of test_bridge_signals.py dropped a SIGINT sent right after
    its spawn (before its own handler existed) and served on: a red run that said nothing
    about the bridge. A handler of our own is reset to the default in every child.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGQUIT) is signal.SIG_IGN:
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def pytest_report_header(config: pytest.Config) -> str:
    return (f'ROS_DOMAIN_ID={ROS_ENV["ROS_DOMAIN_ID"]} '
            f'ROS_AUTOMATIC_DISCOVERY_RANGE={ROS_ENV["ROS_AUTOMATIC_DISCOVERY_RANGE"]}')


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    MEMORY.stop()
    if MEMORY.exceeded():
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    leftovers = live_descendants()
    if leftovers:
        names = ', '.join(f'{p.pid} {" ".join(p.cmdline())[:120]}' for p in leftovers)
        session.config.stash[_orphans_key] = names
        for process in leftovers:
            process.kill()
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    _clean_shared_memory()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    terminalreporter.write_line(MEMORY.report())
    if MEMORY.exceeded():
        terminalreporter.write_line(
            f'FAILED: a process of the suite passed {RSS_BOUND_BYTES >> 20} MB resident', red=True)
    names = config.stash.get(_orphans_key, None)
    if names:
        terminalreporter.write_line(f'FAILED: the suite left processes behind: {names}', red=True)


_orphans_key = pytest.StashKey[str]()


def _clean_shared_memory() -> None:
    """Remove Fast DDS segments of dead processes (SIGKILLed workers leave them in /dev/shm).

    `fastdds shm clean` leaves the ports (and their mutexes) that a killed process kept open
    after their listener had gone; shm_segments removes those too. A SIGKILLed camera leaves its
    side-channel file, when no successor took it over.
    """
    fastdds = Path(sys.executable).with_name('fastdds')
    if fastdds.exists() and shutil.which('python3'):
        subprocess.run([str(fastdds), 'shm', 'clean'], capture_output=True, timeout=30,
                       check=False)
    remove_dead_segments()
    remove_unheld_ports()
    remove_dead_channels()


@pytest.fixture(scope='session')
def ros_env() -> dict[str, str]:
    """Return the ROS variables of this run (already in os.environ)."""
    return dict(ROS_ENV)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[ProcessGroup]:
    """Yield the processes of one test; they are stopped (SIGTERM, then SIGKILL) at its end."""
    group = ProcessGroup(tmp_path, ROS_ENV)
    yield group
    group.stop_all()


@pytest.fixture
def probe() -> Iterator['RosProbe']:  # noqa: F821 imported lazily: rclpy is slow to import
    from sensor_workers.testing.ros_probe import RosProbe

    with RosProbe() as ros_probe:
        yield ros_probe


@pytest.fixture(autouse=True)
def _ros_environment_kept() -> Iterator[None]:
    """Fail a test that leaves this run's ROS variables changed, and put them back.

    Probes in this process read os.environ, the processes a test starts get ROS_ENV: a changed
    ROS_DOMAIN_ID (param_table.main did it) split every later test into two domains that never
    discover each other.
    """
    yield
    changed = {k: os.environ.get(k) for k, v in ROS_ENV.items() if os.environ.get(k) != v}
    os.environ.update(ROS_ENV)
    assert not changed, f"the test changed the run's ROS environment: {changed}"
