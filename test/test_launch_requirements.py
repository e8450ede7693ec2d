"""The launch files' pre-flight check names what is missing and the switch that turns it off."""

import pytest

from sensor_workers.launch_requirements import Executable, check_installed


@pytest.fixture
def prefix(tmp_path, monkeypatch):
    """Make an ament prefix holding package `present` with executable `tool` only."""
    (tmp_path / 'share' / 'ament_index' / 'resource_index' / 'packages').mkdir(parents=True)
    (tmp_path / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'present').touch()
    (tmp_path / 'lib' / 'present').mkdir(parents=True)
    (tmp_path / 'lib' / 'present' / 'tool').touch(mode=0o755)
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(tmp_path))
    return tmp_path


def test_an_installed_executable_passes(prefix):
    assert Executable('present', 'tool', 'extra').problem() is None
    check_installed([Executable('present', 'tool')])


def test_every_missing_piece_is_named_with_its_switch(prefix):
    with pytest.raises(RuntimeError) as error:
        check_installed([Executable('present', 'tool'), Executable('rviz2', 'rviz2', 'rviz'),
                         Executable('present', 'other', 'static_tf'),
                         Executable('sensor_workers_x', 'manager')])
    message = str(error.value)
    assert message.startswith('not starting the cell: ')
    assert "package 'rviz2' not found: install it, or launch with rviz:=false" in message
    assert (f"executable 'other' of package 'present' not found in {prefix / 'lib' / 'present'}"
            ': install it, or launch with static_tf:=false') in message
    assert "package 'sensor_workers_x' not found: install sensor_workers_x" in message
