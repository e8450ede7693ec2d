"""Every node of ours loads a Fast DDS profile itself: the user's when set, ours otherwise.

Large images depend on the publisher's profile: a camera_node started on its own, with no
environment, must still deliver full rate to a subscriber that has no profile either.
"""

import json
from pathlib import Path
import shutil
import signal
import sys
import time

from bridge_helpers import Bridge
from dds_helpers import shm_listener_wakeups
import pytest

from sensor_workers import paths
from sensor_workers.manager.process import WorkerSpec
from sensor_workers.paths import FASTDDS_PROFILE_VARIABLES, fastdds_profile_environment
from sensor_workers.shm_segments import remove_unheld_ports
from sensor_workers.testing.processes import ProcessGroup
from sensor_workers.testing.waiting import wait_until

SHIPPED = str(paths.fastdds_profile())
FIRST, SECOND = FASTDDS_PROFILE_VARIABLES
PLAIN_SUBSCRIBER = Path(__file__).with_name('plain_image_subscriber.py')


def test_without_a_user_profile_both_variables_name_the_shipped_one():
    assert fastdds_profile_environment({}) == {FIRST: SHIPPED, SECOND: SHIPPED}
    assert fastdds_profile_environment({FIRST: ''}) == {FIRST: SHIPPED, SECOND: SHIPPED}


@pytest.mark.parametrize('variable', FASTDDS_PROFILE_VARIABLES)
def test_a_user_profile_in_either_variable_wins_and_is_copied_to_the_other(variable):
    missing = fastdds_profile_environment({variable: '/etc/robot/dds.xml'})
    assert missing == {name: '/etc/robot/dds.xml'
                       for name in FASTDDS_PROFILE_VARIABLES if name != variable}


def test_the_bridge_swaps_the_devices_profile_for_its_own_but_keeps_the_users():
    # `sensor-workers up` and the launch files hand the devices' profile to every process.
    bridge = str(paths.fastdds_profile(paths.UDP_PROFILE))
    cell = {FIRST: SHIPPED, SECOND: SHIPPED}
    assert fastdds_profile_environment(cell, paths.UDP_PROFILE) == {FIRST: bridge,
                                                                       SECOND: bridge}
    assert fastdds_profile_environment({}, paths.UDP_PROFILE) == {FIRST: bridge,
                                                                     SECOND: bridge}
    user = {FIRST: '/etc/robot/dds.xml', SECOND: '/etc/robot/dds.xml'}
    assert fastdds_profile_environment(user, paths.UDP_PROFILE) == {}


def test_the_manager_hands_its_workers_the_users_profile(monkeypatch):
    monkeypatch.setenv(FIRST, '/etc/robot/dds.xml')
    monkeypatch.delenv(SECOND)
    env = WorkerSpec('ft', 'sensor_workers.ft.node', None, {}, {}).environment()
    assert (env[FIRST], env[SECOND]) == ('/etc/robot/dds.xml', '/etc/robot/dds.xml')


def _camera(group: ProcessGroup, unset=(), env=None, width=640, height=480):
    return group.start_python(
        'camera', 'sensor_workers.camera.node', '--ros-args',
        '-p', 'emulate:=true', '-p', f'width:={width}', '-p', f'height:={height}',
        '-p', 'autostart:=true', unset=unset, env=env)


@pytest.mark.integration
def test_a_standalone_camera_node_loads_and_names_the_shipped_profile(tmp_path, ros_env):
    group = ProcessGroup(tmp_path, ros_env)
    try:
        camera = _camera(group, unset=FASTDDS_PROFILE_VARIABLES)
        camera.wait_for_output(rf'Fast DDS profile {SHIPPED} \(shipped\)', timeout=30.0)
    finally:
        group.stop_all()


@pytest.mark.integration
def test_a_camera_node_keeps_the_profile_the_user_set(tmp_path, ros_env):
    own = tmp_path / 'my_profile.xml'
    shutil.copy(SHIPPED, own)
    group = ProcessGroup(tmp_path, ros_env)
    try:
        camera = _camera(group, unset=[SECOND], env={FIRST: str(own)})
        camera.wait_for_output(rf'Fast DDS profile {own} \(set by the user\)', timeout=30.0)
    finally:
        group.stop_all()


@pytest.mark.integration
def test_a_standalone_camera_node_delivers_2448x2048_at_full_rate_to_a_plain_subscriber(
        tmp_path, ros_env):
    # Neither process has a profile in its environment: the camera node must load ours itself.
    group = ProcessGroup(tmp_path, ros_env)
    try:
        camera = _camera(group, unset=FASTDDS_PROFILE_VARIABLES, width=2448, height=2048)
        camera.wait_for_output(r'Fast DDS profile .* \(shipped\)', timeout=30.0)
        subscriber = group.start(
            'subscriber', [sys.executable, str(PLAIN_SUBSCRIBER), '/camera/image_raw', '5'],
            unset=FASTDDS_PROFILE_VARIABLES)
        subscriber.popen.wait(60.0)
        assert subscriber.popen.returncode == 0, subscriber.tail()
        result = json.loads(subscriber.output().strip().splitlines()[-1])
    finally:
        group.stop_all()
    assert result['sizes'] == [[2448, 2048]]
    assert result['fps'] >= 28.5, result


@pytest.mark.integration
def test_every_shared_memory_port_a_process_listens_on_takes_the_short_health_check_step(
        tmp_path, ros_env):
    # An idle listener wakes once per step (a third of the port's healthy_check_timeout_ms), and
    # a process sending to the port for the first time may sleep one step (docs/manager.md,
    # "Fault isolation"): 50 ms with the shipped profile, 333 ms with Fast DDS's default. The
    # port keeps the step of the transport that created it, so this also shows that no port is
    # left to the shared-memory transport rmw_fastrtps adds for LOCALHOST.
    # A plain rclpy process, which does not clear ports that earlier processes left (as ours do
    # in use_fastdds_profile()): one could hand it a port with another process's timeout.
    remove_unheld_ports()
    group = ProcessGroup(tmp_path, ros_env)
    try:
        idle = group.start_python('idle', 'bench.shm_stall', 'listen')
        idle.wait_for_output('^ready', timeout=30.0)
        before = shm_listener_wakeups(idle.pid)
        time.sleep(1.0)
        after = shm_listener_wakeups(idle.pid)
    finally:
        group.stop_all()
    # The participant's default port and the one of its ros_discovery_info reader.
    assert len(before) == 2, before
    woke = {name: after[name] - before[name] for name in before}
    assert all(count >= 10 for count in woke.values()), f'wake-ups in 1 s: {woke}'


@pytest.mark.integration
def test_the_bridge_receives_over_udp_and_offers_the_devices_no_shared_memory_port(
        procs, probe):
    # A shared-memory reader that dies can stall its writers for 2 s (config/fastdds_udp.xml,
    # docs/manager.md "Fault isolation"): the bridge must not be one, yet still get the data.
    from geometry_msgs.msg import WrenchStamped

    bridge = Bridge(procs)
    bridge.process.wait_for_output(r'fastdds_udp\.xml \(shipped\)', timeout=5)
    publisher = probe.publisher(WrenchStamped, '/ft/wrench')
    wait_until(lambda: publisher.get_subscription_count() == 1, 20, 'bridge matched')

    def received() -> float:
        text = bridge.get('/metrics').text
        line = next(line for line in text.splitlines() if line.startswith(
            'sensor_workers_bridge_received_messages_total{topic="wrench"}'))
        return float(line.split()[-1])

    def publish_and_count() -> bool:
        for _ in range(20):
            publisher.publish(WrenchStamped())
        return received() > 0

    wait_until(publish_and_count, 20, 'wrench received by the bridge')
    # No listener thread, so no port of its own that a writer could open. (It still *sends*
    # through the shared-memory transport rmw_fastrtps adds: that touches live ports only.)
    listeners = list(shm_listener_wakeups(bridge.process.pid))
    assert listeners == [], f'the bridge listens on shared memory: {listeners}'


@pytest.mark.integration
def test_a_killed_subscriber_is_unmatched_within_a_few_seconds(tmp_path, ros_env, probe):
    # Until then every writer of its readers reopens their dead shared-memory port on every
    # send (~6000 times a second in a worker), 20 s long with Fast DDS's default lease.
    from std_msgs.msg import String

    publisher = probe.publisher(String, '/shm_stall_probe')
    group = ProcessGroup(tmp_path, ros_env)
    try:
        subscriber = group.start_python('subscriber', 'bench.shm_stall', 'listen')
        wait_until(lambda: publisher.get_subscription_count() == 1, 30, 'subscriber matched')
        subscriber.signal(signal.SIGKILL)
        subscriber.popen.wait(5)
        killed = time.monotonic()
        wait_until(lambda: publisher.get_subscription_count() == 0, 20, 'subscriber unmatched')
        unmatched_after = time.monotonic() - killed
    finally:
        group.stop_all()
    assert unmatched_after < 6.0, f'unmatched {unmatched_after:.1f} s after the kill'
