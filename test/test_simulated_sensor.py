"""When a cell gets a long-lived simulated F/T sensor, and how its workers are pointed at it."""

from pathlib import Path

import pytest

from sensor_workers import paths
from sensor_workers.ft.simulated_sensor import SimulatedSensor, for_cell


def _config(tmp_path: Path, port: str, devices: str) -> Path:
    config = tmp_path / 'cell.yaml'
    config.write_text(f'ft:\n  ros__parameters:\n    port: {port}\n'
                      f'manager:\n  ros__parameters:\n    devices: {devices}\n')
    return config


def test_the_shipped_sim_config_gets_one(tmp_path):
    sensor = for_cell(paths.config_file('sim.yaml'), lambda: tmp_path)
    # It removes its run directory itself: a SIGKILLed `up` or launch leaves none behind.
    assert sensor == SimulatedSensor(tmp_path, sinc_length=51, removes_run_dir=True)
    assert sensor.command()[-6:] == ['--link', str(tmp_path / 'ft_port'),
                                     '--control', str(tmp_path / 'ft_control'),
                                     '--remove-dir', str(tmp_path)]


@pytest.mark.parametrize('port, devices', [
    ('/dev/ttyUSB0', '[camera, ft]'),  # a real sensor
    ('sim', '[camera]'),  # no F/T device in the cell
])
def test_a_real_port_or_no_ft_device_gets_none_and_no_run_dir(tmp_path, port, devices):
    config = _config(tmp_path, port, devices)

    def no_run_dir() -> Path:
        raise AssertionError('a run directory was made for nothing')

    assert for_cell(config, no_run_dir) is None


def test_every_ft_worker_is_pointed_at_the_link_after_the_users_parameters(tmp_path):
    sensor = SimulatedSensor(tmp_path)
    manager = {'ft': {'parameters': ['tare_samples:=100']}}
    assert sensor.manager_ft_parameters(manager) == [
        'tare_samples:=100', f'port:={tmp_path / "ft_port"}']
    assert sensor.manager_ft_parameters({}) == [f'port:={tmp_path / "ft_port"}']


def test_start_returns_once_the_link_exists(tmp_path):
    sensor = SimulatedSensor(tmp_path)
    process = sensor.start({'PATH': '/usr/bin:/bin'})
    try:
        assert sensor.link.exists() and process.poll() is None
    finally:
        process.terminate()
        assert process.wait(5.0) == 0, sensor.log_path.read_text()
