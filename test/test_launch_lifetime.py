"""Under ros2 launch, no process of the cell outlives the launch, whatever ends it.

The launch runs sim.launch.py as `ros2 launch` does (a LaunchService in a process of its own);
once both devices are active, that process gets SIGTERM (what `systemctl stop` and most
supervisors send) or SIGKILL, or its process group gets SIGINT (Ctrl-C in a terminal: launch
then leaves the signal to reach its processes directly). Every process it started (manager,
bridge, simulated sensor, and the workers and standbys the manager spawned) must be gone
within 2 s.

Runs where ROS 2's launch and launch_ros are installed and sensor_workers is installed into the
same prefix (a colcon workspace, or `pip install .`): launch_ros looks the executables up there.
"""

import os
import signal
import sys
import textwrap
import time

from manager_helpers import Watch, available_devices
import psutil
import pytest

from sensor_workers.testing.ros_probe import RosProbe
from sensor_workers.testing.waiting import wait_until

pytest.importorskip('launch', reason='launch (ROS 2, not on PyPI) is not installed')
pytest.importorskip('launch_ros', reason='launch_ros (ROS 2, not on PyPI) is not installed')
ament_index = pytest.importorskip('ament_index_python.packages')

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(set(available_devices()) != {'camera', 'ft'}, reason='needs both workers'),
]

LAUNCHER = textwrap.dedent("""
    import os, sys
    os.setpgrp()  # a terminal's foreground job: a group of its own
    from launch import LaunchDescription, LaunchService
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    service = LaunchService(argv=sys.argv[1:])
    service.include_launch_description(LaunchDescription([IncludeLaunchDescription(
        PythonLaunchDescriptionSource(sys.argv[1]),
        launch_arguments=[arg.split(':=', 1) for arg in sys.argv[2:]])]))
    sys.exit(service.run())
""")
GONE_WITHIN_S = 2.0


@pytest.fixture(scope='module')
def sim_launch():
    try:
        share = ament_index.get_package_share_directory('sensor_workers')
    except ament_index.PackageNotFoundError:
        pytest.skip('sensor_workers is not installed where launch_ros looks (ament index)')
    return f'{share}/launch/sim.launch.py'


def alive(processes: list[psutil.Process]) -> list[str]:
    """Return the command lines of the processes that still run (zombies count as gone)."""
    running = []
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                running.append(' '.join(process.cmdline())[:100])
        except psutil.NoSuchProcess:
            continue
    return running


@pytest.mark.parametrize(('signum', 'to_group'), [
    (signal.SIGTERM, False), (signal.SIGKILL, False), (signal.SIGINT, True),
], ids=['SIGTERM', 'SIGKILL', 'ctrl-c'])
def test_ending_the_launch_ends_every_process_it_started(procs, sim_launch, signum, to_group):
    probe = RosProbe('launch_lifetime_probe')
    try:
        watch = Watch.attach(probe)
        launcher = procs.start('launch', [sys.executable, '-c', LAUNCHER, sim_launch,
                                          'bridge_port:=0', 'static_tf:=false'])
        watch.wait_active(['camera', 'ft'], timeout=120)
        wait_until(lambda: all(watch.state(d).get('standby') == 'ready' for d in ('camera', 'ft')),
                   60, 'warm standbys ready')
        started = psutil.Process(launcher.pid).children(recursive=True)
        assert len(started) >= 7, [p.cmdline() for p in started]  # manager, bridge, sim, 2+2

        killed = time.monotonic()
        if to_group:
            os.killpg(launcher.pid, signum)
        else:
            launcher.signal(signum)
        wait_until(lambda: not alive(started), GONE_WITHIN_S + 5.0,
                   f'every process of the launch gone after {signum.name}', period=0.02)
        took = time.monotonic() - killed
        assert took <= GONE_WITHIN_S, f'the last process went {took:.2f} s after {signum.name}'
    finally:
        probe.close()
