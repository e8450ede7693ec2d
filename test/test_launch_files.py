"""The launch files build their LaunchDescription wherever ROS 2 `launch` is installed.

The PyPI wheels do not include launch (FACTS.md): in the project's venv these tests skip. In a
ROS 2 workspace (`colcon test`) they run against the installed package.
"""

import importlib.util
import os
from pathlib import Path
import re
import shutil
import tempfile

import pytest

launch = pytest.importorskip('launch', reason='ROS 2 launch is not installed (not on PyPI)')
if not hasattr(launch, 'LaunchDescription'):
    # e.g. the repository's own launch/ directory, importable as a namespace package
    pytest.skip('ROS 2 launch is not installed (not on PyPI)', allow_module_level=True)
pytest.importorskip('launch_ros', reason='ROS 2 launch_ros is not installed (not on PyPI)')
ament_index = pytest.importorskip('ament_index_python.packages')
try:
    ament_index.get_package_share_directory('sensor_workers')
except ament_index.PackageNotFoundError:
    pytest.skip('sensor_workers is not installed into an ament prefix (colcon build / pip '
                'install with AMENT_PREFIX_PATH)', allow_module_level=True)

from launch.actions import (  # noqa: E402,I001
    DeclareLaunchArgument, ExecuteProcess, OpaqueFunction, RegisterEventHandler,
    SetEnvironmentVariable)
from launch.event_handlers import OnProcessIO, OnShutdown  # noqa: E402
from launch.events.process import ProcessStdout  # noqa: E402
from launch.substitutions import TextSubstitution  # noqa: E402
from launch.utilities import normalize_to_list_of_substitutions  # noqa: E402
from launch.utilities import perform_substitutions  # noqa: E402
from launch_ros.actions import Node  # noqa: E402

from sensor_workers import bringup  # noqa: E402
from sensor_workers.paths import FASTDDS_PROFILE_VARIABLES  # noqa: E402

LAUNCH_DIR = Path(__file__).resolve().parents[1] / 'launch'
OPTIONAL = {'static_tf': ('tf2_ros', 'static_transform_publisher'), 'rviz': ('rviz2', 'rviz2'),
            'aggregator': ('diagnostic_aggregator', 'aggregator_node')}
ARGUMENTS = {'config', 'bridge_host', 'bridge_port', 'bridge', 'log_level', 'static_tf', 'rviz',
             'aggregator'}


@pytest.fixture(autouse=True)
def optional_packages(tmp_path, monkeypatch) -> Path:
    """Install stand-ins of the optional packages into a prefix of their own.

    The launch files check that an executable exists before they start anything; what these
    tests look at is the description, not rviz. A test removes a stand-in to see the check.
    """
    prefix = tmp_path / 'optional_prefix'
    index = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages'
    index.mkdir(parents=True)
    for package, executable in OPTIONAL.values():
        (index / package).touch()
        (prefix / 'lib' / package).mkdir(parents=True)
        (prefix / 'lib' / package / executable).touch(mode=0o755)
    monkeypatch.setenv('AMENT_PREFIX_PATH', f'{os.environ["AMENT_PREFIX_PATH"]}:{prefix}')
    return prefix


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name.replace('.', '_'), LAUNCH_DIR / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def _text(context, value) -> str:
    return perform_substitutions(context, normalize_to_list_of_substitutions(value))


def _evaluate(description, **arguments) -> tuple[launch.LaunchContext, list]:
    """Set the description's arguments and return the context and what its function returns."""
    context = launch.LaunchContext()
    for entity in description.entities:
        if isinstance(entity, DeclareLaunchArgument):
            context.launch_configurations[entity.name] = arguments.get(
                entity.name, perform_substitutions(context, entity.default_value))
    opaque = [e for e in description.entities if isinstance(e, OpaqueFunction)]
    assert len(opaque) == 1
    return context, opaque[0].execute(context)


def _nodes(description, **arguments) -> dict[str, ExecuteProcess]:
    """Evaluate the description's arguments and return what it starts, by executable name.

    Included: what starts on another process's output (the manager once bota_sim printed its
    link), after feeding that output to the handler.
    """
    context, actions = _evaluate(description, **arguments)
    processes = [a for a in actions if isinstance(a, ExecuteProcess)]
    handlers = [a.event_handler for a in actions if isinstance(a, RegisterEventHandler)]
    for handler in handlers:
        if isinstance(handler, OnShutdown):  # what the launch removes when it ends
            handler.handle(launch.events.Shutdown(), context)
        if not isinstance(handler, OnProcessIO):
            continue
        for process in processes:
            for text in (b'port: /dev/pts/9\n', b'link: /tmp/cell/ft_port\n'):
                event = ProcessStdout(action=process, name='p', cmd=[], cwd=None, env=None,
                                      pid=1, text=text)
                if handler.matches(event):
                    processes += handler.handle(event, context) or []
    assert all(isinstance(a, ExecuteProcess | RegisterEventHandler) for a in actions)
    return {_executable(context, process): process for process in processes}


def _executable(context, process: ExecuteProcess) -> str:
    if isinstance(process, Node):
        return _text(context, process.node_executable)
    command = [_text(context, part) for part in process.cmd]
    return command[2].rpartition('.')[2] if command[1] == '-m' else Path(command[0]).name


@pytest.mark.parametrize('name, config, static_tf', [
    ('sim.launch.py', 'sim.yaml', 'true'),
    ('bringup.launch.py', 'robot.yaml', 'false'),
])
def test_description_builds(name, config, static_tf):
    description = _load(name)
    assert isinstance(description, launch.LaunchDescription)
    arguments = {a.name: a for a in description.get_launch_arguments()}
    assert set(arguments) == ARGUMENTS
    context = launch.LaunchContext()
    assert perform_substitutions(context, arguments['config'].default_value).endswith(
        f'/config/{config}')
    assert perform_substitutions(context, arguments['static_tf'].default_value) == static_tf
    env = [e for e in description.entities if isinstance(e, SetEnvironmentVariable)]
    assert [perform_substitutions(context, e.name) for e in env] == [
        'FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE']
    for variable in env:
        assert perform_substitutions(context, variable.value).endswith('/config/fastdds.xml')


@pytest.mark.parametrize('user_sets', [None, *FASTDDS_PROFILE_VARIABLES])
def test_a_profile_the_user_set_wins_over_the_shipped_one(monkeypatch, user_sets):
    for name in FASTDDS_PROFILE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    if user_sets is not None:
        monkeypatch.setenv(user_sets, '/etc/robot/dds.xml')
    context = launch.LaunchContext()
    for entity in _load('sim.launch.py').entities:
        if isinstance(entity, SetEnvironmentVariable):
            entity.visit(context)
    chosen = {context.environment[name] for name in FASTDDS_PROFILE_VARIABLES}
    if user_sets is None:
        assert len(chosen) == 1 and chosen.pop().endswith('/config/fastdds.xml')
    else:
        assert chosen == {'/etc/robot/dds.xml'}


def test_default_nodes_and_switches():
    nodes = _nodes(_load('sim.launch.py'))
    # config/sim.yaml's `ft.port: sim`: the simulated sensor runs as a device of its own.
    assert set(nodes) == {'sim', 'manager', 'bridge', 'static_transform_publisher'}
    nodes = _nodes(_load('bringup.launch.py'), bridge='false', rviz='true', aggregator='true')
    assert set(nodes) == {'manager', 'rviz2', 'aggregator_node'}


@pytest.mark.parametrize('switch', sorted(OPTIONAL))
def test_a_missing_optional_package_starts_nothing_and_names_its_switch(optional_packages,
                                                                         switch):
    package, _ = OPTIONAL[switch]
    (optional_packages / 'share' / 'ament_index' / 'resource_index' / 'packages' / package
     ).unlink()
    shutil.rmtree(optional_packages / 'lib' / package)
    arguments = {name: 'true' for name in OPTIONAL}
    # The function raises before it returns a single action (or makes the simulator's run
    # directory): launch starts nothing and leaves nothing.
    run_dirs = set(Path(tempfile.gettempdir()).glob('sensor_workers_launch_*'))
    with pytest.raises(RuntimeError, match=f"'{package}' not found.*{switch}:=false"):
        _evaluate(_load('sim.launch.py'), **arguments)
    assert set(Path(tempfile.gettempdir()).glob('sensor_workers_launch_*')) == run_dirs
    assert _nodes(_load('sim.launch.py'), **{**arguments, switch: 'false'})


def test_every_process_is_tied_to_the_launch_process():
    # A failed or SIGTERMed launch takes the cell along (lifetime.py).
    for name, process in _nodes(_load('sim.launch.py')).items():
        if name in ('sim', 'manager', 'bridge'):
            context = launch.LaunchContext()
            env = {_text(context, k): _text(context, v) for k, v in process.additional_env}
            assert env == {'SENSOR_WORKERS_PARENT_PID': str(os.getpid())}, name


def test_the_manager_starts_only_once_the_simulated_sensor_is_there():
    context, actions = _evaluate(_load('sim.launch.py'))
    assert not [a for a in actions if isinstance(a, Node) and 'manager' in
                _text(context, a.node_executable)]
    handlers = [a.event_handler for a in actions if isinstance(a, RegisterEventHandler)]
    assert any(isinstance(h, OnProcessIO) for h in handlers)
    for handler in handlers:
        if isinstance(handler, OnShutdown):
            handler.handle(launch.events.Shutdown(), context)


def test_bridge_parameters_follow_the_arguments():
    assert bringup.bridge_parameter_list('c.yaml', '', '') == ['c.yaml']
    assert bringup.bridge_parameter_list('c.yaml', '0.0.0.0', '9000') == [
        'c.yaml', {'host': '0.0.0.0', 'port': 9000}]
    with pytest.raises(ValueError, match='bridge_port'):
        bringup.bridge_parameter_list('c.yaml', '', 'http')


def test_frame_ids_come_from_the_config(tmp_path):
    config = tmp_path / 'cell.yaml'
    config.write_text('ft:\n  ros__parameters:\n    frame_id: tool0_ft\n')
    assert bringup.frame_ids(config) == {'camera': 'camera_optical_frame', 'ft': 'tool0_ft'}


def test_missing_config_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere.yaml'):
        _nodes(_load('sim.launch.py'), config=str(tmp_path / 'nowhere.yaml'))


def test_log_level_sets_our_nodes_loggers_only():
    nodes = _nodes(_load('sim.launch.py'), log_level='debug')
    for name in ('manager', 'bridge'):
        context = launch.LaunchContext()
        # The plain-text parts of the command (name and parameters are added at execution).
        cmd = [_text(context, part) for part in nodes[name].cmd
               if all(isinstance(sub, TextSubstitution) for sub in part)]
        assert cmd[cmd.index('--log-level') + 1] == f'{name}:=debug', cmd


def test_launch_configuration_names_match_arguments():
    # Every LaunchConfiguration read by the helper is declared (a typo would read '').
    source = Path(bringup.__file__).read_text()
    used = set(re.findall(r"(?:LaunchConfiguration|switched_on)\('(\w+)'\)", source))
    assert {'config', 'rviz', 'bridge'} <= used
    assert used <= ARGUMENTS


def test_bridge_launch_starts_the_bridge_alone():
    # The devices' host runs sim/bringup.launch.py bridge:=false; this is the other host.
    assert set(_nodes(_load('bridge.launch.py'))) == {'bridge'}
    assert set(_nodes(_load('bridge.launch.py'), bridge_port='9090')) == {'bridge'}
