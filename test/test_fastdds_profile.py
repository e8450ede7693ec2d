"""Every node of ours loads a Fast DDS profile itself: the user's when set, ours otherwise.

Large images depend on the publisher's profile: a camera_node started on its own, with no
environment, must still deliver full rate to a subscriber that has no profile either.
"""

import json
from pathlib import Path
import shutil
import sys

import pytest

from sensor_workers import paths
from sensor_workers.manager.process import WorkerSpec
from sensor_workers.paths import FASTDDS_PROFILE_VARIABLES, fastdds_profile_environment
from sensor_workers.testing.processes import ProcessGroup

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
