"""launch_testing: sim.launch.py brings up the cell; data flows; a killed worker or bridge returns.

Runs where ROS 2's launch_testing is installed (a colcon workspace: `colcon test`, or
`launch_test test/test_sim_launch.py`); launch_testing's pytest plugin needs pytest < 8.4.
"""

import os
from pathlib import Path
import signal
import threading
import time
import unittest

import httpx
import psutil
import pytest

pytest.importorskip(
    'launch_testing', reason='launch_testing (ROS 2, not on PyPI) is not installed')
pytest.importorskip('launch_ros', reason='launch_ros (ROS 2, not on PyPI) is not installed')

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from geometry_msgs.msg import WrenchStamped  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from sensor_workers import qos  # noqa: E402
from sensor_workers.diagnostics import latest_status, status_values  # noqa: E402
from sensor_workers.testing.ros_probe import RosProbe  # noqa: E402

SIM_LAUNCH = Path(__file__).resolve().parents[1] / 'launch' / 'sim.launch.py'
FLOW_TIMEOUT_S = 20.0
RESTART_TIMEOUT_S = 15.0


@pytest.mark.rostest
def generate_test_description():
    sim = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(SIM_LAUNCH)),
        # Any free port for the bridge; no tf2_ros needed for what is tested here.
        launch_arguments={'bridge_port': '0', 'static_tf': 'false'}.items())
    return LaunchDescription([sim, launch_testing.actions.ReadyToTest()])


class Counter:
    """Counts messages without keeping them (images are megabytes each)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, msg) -> None:
        with self._lock:
            self.count += 1

    def wait_for_more(self, than: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count > than:
                return True
            time.sleep(0.05)
        return False


class TestSimCell(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.probe = RosProbe('sim_launch_probe')
        cls.images = Counter()
        cls.wrenches = Counter()
        node = cls.probe.node
        node.create_subscription(Image, '/camera/image_raw', cls.images, qos.SENSOR_DATA)
        node.create_subscription(WrenchStamped, '/ft/wrench', cls.wrenches, qos.SENSOR_DATA)
        cls.states = cls.probe.collect(DiagnosticArray, '/manager/device_states', qos.LATCHED)
        cls.events = cls.probe.collect(
            DiagnosticStatus, '/safety/worker_events', qos.LATCHED_EVENTS)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.probe.close()

    def _device(self, name: str) -> dict[str, str]:
        status = latest_status(self.states.snapshot()[0], name)
        return {} if status is None else {'message': status.message, **status_values(status)}

    def _wait_active(self, name: str, timeout: float, other_than_pid: str = '') -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            device = self._device(name)
            if device.get('message') == 'active' and device.get('pid', '0') not in ('', '0',
                                                                              other_than_pid):
                return device
            time.sleep(0.05)
        self.fail(f'{name} not active within {timeout} s; last state {self._device(name)}')

    def test_1_image_and_wrench_flow(self) -> None:
        self.assertTrue(self.images.wait_for_more(10, FLOW_TIMEOUT_S),
                        f'only {self.images.count} images on /camera/image_raw')
        self.assertTrue(self.wrenches.wait_for_more(500, FLOW_TIMEOUT_S),
                        f'only {self.wrenches.count} wrenches on /ft/wrench')

    def test_2_killed_worker_comes_back(self) -> None:
        before = self._wait_active('ft', FLOW_TIMEOUT_S)
        os.kill(int(before['pid']), signal.SIGKILL)
        after = self._wait_active('ft', RESTART_TIMEOUT_S, other_than_pid=before['pid'])
        self.assertGreaterEqual(int(after['restarts']), 1)
        flowing = self.wrenches.count
        self.assertTrue(self.wrenches.wait_for_more(flowing + 100, RESTART_TIMEOUT_S),
                        'no wrench after the restart')
        events = [status_values(e).get('event') for e in self.events.snapshot()[0]
                  if e.name == 'ft']
        self.assertIn('exited', events)
        # The cell as a whole still works. (Not "the camera was untouched": on a heavily loaded
        # machine the manager may restart it for a missed heartbeat, and rightly so.)
        images = self.images.count
        self.assertTrue(self.images.wait_for_more(images + 5, RESTART_TIMEOUT_S),
                        'no image after the F/T worker restarted')

    def test_3_killed_bridge_comes_back_alone(self) -> None:
        ft = self._wait_active('ft', FLOW_TIMEOUT_S)
        bridge = _bridge_process()
        self.assertIsNotNone(bridge, 'no bridge process under the launch')
        bridge.kill()
        bridge.wait(5)
        deadline = time.monotonic() + RESTART_TIMEOUT_S
        while (respawned := _bridge_process()) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertIsNotNone(respawned, 'the bridge was not respawned')
        self.assertNotEqual(respawned.pid, bridge.pid)
        # Back means serving again. (A bridge still importing when the test ends got launch's
        # SIGINT before it handles signals: KeyboardInterrupt, exit -2 in test_exit_codes.)
        self.assertTrue(_serves_health(respawned, RESTART_TIMEOUT_S),
                        'the respawned bridge does not serve /health')
        # The workers are the manager's: a dead bridge restarts none of them.
        self.assertEqual(self._wait_active('ft', FLOW_TIMEOUT_S)['pid'], ft['pid'])


def _bridge_process() -> psutil.Process | None:
    """Return the bridge the launch (in this process) started, if it runs."""
    for child in psutil.Process().children():
        if '__node:=bridge' in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE:
            return child
    return None


def _serves_health(process: psutil.Process, timeout: float) -> bool:
    """Wait until `process` listens on a TCP port whose GET /health answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for connection in process.net_connections(kind='tcp'):
            if connection.status != psutil.CONN_LISTEN:
                continue
            host, port = connection.laddr
            shown = f'[{host}]' if ':' in host else host
            try:
                if httpx.get(f'http://{shown}:{port}/health', timeout=2).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    return False


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_exit_codes(self, proc_info) -> None:
        # Manager and bridge stop cleanly on launch's SIGINT (the manager stops its workers).
        launch_testing.asserts.assertExitCodes(proc_info)
