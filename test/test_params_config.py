"""The README's parameter table is the nodes' own, and the shipped config files fit the nodes."""

import os
from pathlib import Path

import pytest

from sensor_workers import param_table

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [ROOT / 'config' / 'sim.yaml', ROOT / 'config' / 'sim_two_cameras.yaml',
           ROOT / 'config' / 'robot.yaml']


def _require(node_name: str) -> None:
    if node_name not in param_table.available_nodes():
        pytest.skip(f'{param_table.NODE_MODULES[node_name]} is not in this tree yet')


@pytest.fixture(scope='module')
def generated() -> str:
    return param_table.generated_section()


def test_readme_table_matches_declared_parameters(generated):
    readme = param_table.readme_section((ROOT / 'README.md').read_text())
    assert readme == generated, (
        'README.md parameters are stale: run `python -m sensor_workers.param_table`')


def test_table_shows_manager_device_parameters_once():
    rows = {p.name: p for p in param_table.node_parameters('manager')}
    assert rows['<device>.module'].default == 'sensor_workers.<device>.node'
    assert rows['<device>.cpu_affinity'].type == 'integer_array'
    assert rows['<device>.cpu_affinity'].default is None
    assert not any(name.startswith(('camera.', 'ft.')) for name in rows)


@pytest.mark.parametrize('config', CONFIGS, ids=lambda p: p.name)
def test_config_sections_are_nodes(config):
    # A second camera's section (`camera_left`) is a device of the manager of kind camera.
    devices = {d for d, kind in param_table.device_kinds(config).items()
               if kind in param_table.NODE_MODULES}
    unknown = set(param_table.sections(config)) - set(param_table.NODE_MODULES) - devices
    assert not unknown


@pytest.mark.parametrize('node_name', list(param_table.NODE_MODULES))
@pytest.mark.parametrize('config', CONFIGS, ids=lambda p: p.name)
def test_config_values_are_declared_and_valid(config, node_name):
    if node_name not in param_table.sections(config):
        pytest.skip(f'{config.name} has no {node_name} section')
    _require(node_name)
    assert param_table.check_section(config, node_name) == []


@pytest.mark.parametrize('section, finding', [
    ('ft:\n  ros__parameters:\n    backend: serial_magic\n', 'serial_magic'),
    ('ft:\n  ros__parameters:\n    bogus: 1\n', "ft has no parameter 'bogus'"),
    ('ft:\n  ros__parameters:\n    sinc_length: fast\n', 'InvalidParameterTypeException'),
    ('bridge:\n  ros__parameters:\n    port: 99999\n', 'InvalidParameterValueException'),
    ('manager:\n  ros__parameters:\n    devices: [ft]\n    ft:\n      nice: 40\n', 'ft.nice'),
    ('gripper:\n  ros__parameters:\n    force: 1.0\n', "section 'gripper' is not a node"),
], ids=['choice', 'unknown', 'type', 'range', 'device-range', 'section'])
def test_bad_values_are_found(tmp_path, section, finding):
    bad = tmp_path / 'bad.yaml'
    bad.write_text(section)
    assert finding in '\n'.join(param_table.check_config(bad))


def test_a_second_camera_is_checked_as_a_camera(tmp_path):
    _require('camera')
    two = ROOT / 'config' / 'sim_two_cameras.yaml'
    assert param_table.device_kinds(two)['camera_left'] == 'camera'
    assert param_table.check_config(two) == []
    bad = tmp_path / 'bad.yaml'
    bad.write_text('manager:\n  ros__parameters:\n    devices: [camera_left]\n'
                   '    camera_left:\n      kind: camera\n'
                   'camera_left:\n  ros__parameters:\n    bogus: 1\n')
    assert param_table.check_config(bad) == ["bad.yaml: camera_left has no parameter 'bogus'"]


def test_manager_declares_the_config_devices(tmp_path):
    config = tmp_path / 'one.yaml'
    config.write_text('manager:\n  ros__parameters:\n    devices: [ft]\n'
                      '    ft:\n      cpu_affinity: [0]\n      nice: 5\n')
    assert param_table.check_config(config) == []
    with param_table.instantiated('manager', config) as node:
        assert list(node.get_parameter('ft.cpu_affinity').value) == [0]
        assert not node.has_parameter('camera.nice')


def test_cli_check(tmp_path, monkeypatch, generated, ros_env):
    monkeypatch.setattr(param_table, 'generated_section', lambda: generated)
    readme = tmp_path / 'README.md'
    readme.write_text(f'# x\n\n{param_table.BEGIN}\nold\n{param_table.END}\n')
    assert param_table.main(['--readme', str(readme), '--check']) == 1
    assert param_table.main(['--readme', str(readme)]) == 0
    assert param_table.main(['--readme', str(readme), '--check']) == 0
    assert readme.read_text().startswith('# x\n\n')
    good = tmp_path / 'good.yaml'
    good.write_text('ft:\n  ros__parameters:\n    sinc_length: 64\n')
    assert param_table.main(['--config', str(good)]) == 0
    # Its private domain is its own: the caller's (this run's) is given back.
    assert os.environ['ROS_DOMAIN_ID'] == ros_env['ROS_DOMAIN_ID']
