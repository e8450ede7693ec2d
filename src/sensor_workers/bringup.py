"""What the launch files start: manager, bridge, optional extras; or the bridge alone.

sim.launch.py and bringup.launch.py start the cell (`generate`), bridge.launch.py the bridge on a
host of its own (`generate_bridge`).

Importable only where ROS 2 `launch` and `launch_ros` are installed (a ROS 2 workspace); the
rest of the package never imports it.

Both set the Fast DDS profile (config/fastdds.xml: the 64 MB shared-memory segment large images
need) for every process they start, under both variable names Fast DDS versions read, unless
the user set one: the user's profile always wins (and our nodes load ours themselves otherwise).

The manager spawns and supervises the workers itself (restarts with backoff, degraded marking),
so no launch `respawn` is set on top of it: two supervisors would fight over the same device.
When the manager exits, the launch shuts down (the bridge alone would only report stale data).
The bridge is respawned when it dies (as `sensor-workers up` does); the workers are untouched.
Every process started here dies with the launch process, however it ends (lifetime.py), and
nothing starts when an executable to be started is not installed (launch_requirements.py).
"""

from pathlib import Path
import shutil
import tempfile
from typing import Any

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    ExecuteProcess,
    OpaqueFunction,
    RegisterEventHandler,
    SetEnvironmentVariable,
    Shutdown,
)
from launch.event_handlers import OnProcessIO, OnShutdown
from launch.substitutions import EnvironmentVariable, LaunchConfiguration
from launch_ros.actions import Node

from sensor_workers import lifetime
from sensor_workers.config_file import node_parameters
from sensor_workers.ft import simulated_sensor
from sensor_workers.ft.simulated_sensor import SimulatedSensor
from sensor_workers.launch_requirements import Executable, check_installed
from sensor_workers.paths import FASTDDS_PROFILE_VARIABLES

PACKAGE = 'sensor_workers'
LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'fatal']
# After SIGINT, launch waits this long before SIGTERM: the manager needs stop_timeout_ms (3 s by
# default) to stop its workers, the bridge up to ~3 s to close its clients and server; a loaded
# machine (or a slow ROS shutdown) needs headroom beyond launch's default 5 s.
SIGTERM_TIMEOUT_S = '10'
# A dead bridge comes back after this; launch has no backoff, and a bridge that cannot start
# (a port in use) then retries once a second instead of spinning.
BRIDGE_RESPAWN_DELAY_S = 1.0
DEFAULT_FRAMES = {'camera': 'camera_optical_frame', 'ft': 'ft_sensor'}


def share_file(*parts: str) -> str:
    """Return the path of an installed file of this package."""
    return str(Path(get_package_share_directory(PACKAGE), *parts))


def fastdds_profile_variables(shipped: str) -> list[SetEnvironmentVariable]:
    """Set both profile variables to the one the user set, or to `shipped` when none is set."""
    first, second = FASTDDS_PROFILE_VARIABLES
    return [
        SetEnvironmentVariable(first, EnvironmentVariable(
            first, default_value=EnvironmentVariable(second, default_value=shipped))),
        SetEnvironmentVariable(second, EnvironmentVariable(
            second, default_value=EnvironmentVariable(first))),
    ]


def generate(config: str, *, static_tf: bool) -> LaunchDescription:
    """Build the description shared by both launch files.

    `config` is the default parameter file in the package's config/ directory; `static_tf` is
    the default of the `static_tf` argument (on for the emulated cell, off on a robot, whose
    robot description places the camera and the sensor).
    """
    arguments = [
        _config_argument(config),
        *_bridge_arguments(),
        DeclareLaunchArgument(
            'bridge', default_value='true', choices=['true', 'false'],
            description='Start the websocket bridge.'),
        DeclareLaunchArgument(
            'log_level', default_value='info', choices=LOG_LEVELS,
            description='Log level of our nodes: the manager (which hands it to the workers '
                        'it spawns) and the bridge; rcl and the middleware keep theirs.'),
        DeclareLaunchArgument(
            'static_tf', default_value=str(static_tf).lower(), choices=['true', 'false'],
            description='Publish an identity transform from the F/T frame to the camera frame '
                        '(frame_ids from the config file), so a single rviz fixed frame shows '
                        'both; turn off when a robot description provides the real one.'),
        DeclareLaunchArgument(
            'rviz', default_value='false', choices=['true', 'false'],
            description='Start rviz2 with config/sensor_workers.rviz.'),
        DeclareLaunchArgument(
            'aggregator', default_value='false', choices=['true', 'false'],
            description='Start diagnostic_aggregator (config/diagnostic_aggregator.yaml), which '
                        'rqt_robot_monitor reads /diagnostics_agg from.'),
    ]
    return LaunchDescription([
        *arguments,
        # Inherited by every process launched below, and by the workers the manager spawns.
        *fastdds_profile_variables(share_file('config', 'fastdds.xml')),
        OpaqueFunction(function=_nodes),
    ])


def _nodes(context: LaunchContext) -> list:
    config = LaunchConfiguration('config').perform(context)
    if not Path(config).is_file():
        raise FileNotFoundError(f'config file not found: {config}')

    def switched_on(name: str) -> bool:
        return LaunchConfiguration(name).perform(context) == 'true'

    level = LaunchConfiguration('log_level').perform(context)
    frames = frame_ids(Path(config))
    extras: list[tuple[Executable, Node]] = []
    if switched_on('bridge'):
        extras.append((Executable(PACKAGE, 'bridge', 'bridge'), _bridge_node(context, config)))
    if switched_on('static_tf'):
        extras.append((Executable('tf2_ros', 'static_transform_publisher', 'static_tf'), Node(
            package='tf2_ros', executable='static_transform_publisher',
            name='ft_to_camera_static_tf', output='log',
            arguments=['--frame-id', frames['ft'], '--child-frame-id', frames['camera']])))
    if switched_on('rviz'):
        extras.append((Executable('rviz2', 'rviz2', 'rviz'), Node(
            package='rviz2', executable='rviz2', name='rviz2', output='log',
            arguments=['-d', share_file('config', 'sensor_workers.rviz')])))
    if switched_on('aggregator'):
        extras.append((Executable('diagnostic_aggregator', 'aggregator_node', 'aggregator'), Node(
            package='diagnostic_aggregator', executable='aggregator_node', name='analyzers',
            output='log', parameters=[share_file('config', 'diagnostic_aggregator.yaml')])))
    # Before anything starts (or any run directory is made): a missing package must not leave
    # the cell running.
    check_installed([Executable(PACKAGE, 'manager'), *(executable for executable, _ in extras)])
    manager_parameters: dict = {'config_file': config}
    simulated = simulated_sensor.for_cell(
        Path(config), lambda: Path(tempfile.mkdtemp(prefix='sensor_workers_launch_')))
    if simulated is not None:
        manager_parameters['ft.parameters'] = simulated.manager_ft_parameters(
            node_parameters(Path(config), 'manager'))
    manager = Node(
        package=PACKAGE, executable='manager', name='manager', output='screen',
        parameters=[config, manager_parameters], ros_arguments=_log_level('manager', level),
        additional_env=lifetime.child_environment(), sigterm_timeout=SIGTERM_TIMEOUT_S,
        on_exit=Shutdown(reason='the manager exited'))
    return [*([manager] if simulated is None else _simulated_sensor_then(simulated, manager)),
            *(node for _, node in extras)]


def _bridge_node(context: LaunchContext, config: str) -> Node:
    return Node(
        package=PACKAGE, executable='bridge', name='bridge', output='screen',
        parameters=bridge_parameter_list(
            config, LaunchConfiguration('bridge_host').perform(context),
            LaunchConfiguration('bridge_port').perform(context)),
        ros_arguments=_log_level('bridge', LaunchConfiguration('log_level').perform(context)),
        respawn=True, respawn_delay=BRIDGE_RESPAWN_DELAY_S,
        additional_env=lifetime.child_environment(), sigterm_timeout=SIGTERM_TIMEOUT_S)


def generate_bridge(config: str) -> LaunchDescription:
    """Build the description of the bridge alone, for a host without the devices.

    Discovery reaches the devices' host through ROS_STATIC_PEERS (README, "Devices and bridge
    on different hosts"); `config` is the default parameter file, its `bridge` section is read.
    """
    return LaunchDescription([
        _config_argument(config),
        *_bridge_arguments(),
        DeclareLaunchArgument(
            'log_level', default_value='info', choices=LOG_LEVELS,
            description="Log level of the bridge's logger; rcl and the middleware keep theirs."),
        *fastdds_profile_variables(share_file('config', 'fastdds.xml')),
        OpaqueFunction(function=_bridge_only),
    ])


def _bridge_only(context: LaunchContext) -> list:
    config = LaunchConfiguration('config').perform(context)
    if not Path(config).is_file():
        raise FileNotFoundError(f'config file not found: {config}')
    check_installed([Executable(PACKAGE, 'bridge', 'bridge')])
    return [_bridge_node(context, config)]


def _config_argument(config: str) -> DeclareLaunchArgument:
    return DeclareLaunchArgument(
        'config', default_value=share_file('config', config),
        description='ROS parameter file with sections camera, ft, manager and bridge; the '
                    'manager hands it to every worker it spawns.')


def _bridge_arguments() -> list[DeclareLaunchArgument]:
    return [
        DeclareLaunchArgument(
            'bridge_host', default_value='',
            description="Address the bridge listens on; empty: the config file's bridge.host."),
        DeclareLaunchArgument(
            'bridge_port', default_value='',
            description="TCP port of the bridge; empty: the config file's bridge.port."),
    ]


def _log_level(node: str, level: str) -> list[str]:
    """Set the level of one node's logger, not rcl's or the middleware's.

    A plain `--log-level debug` switched rcl to debug too: ~2300 lines/s of `Subscription
    taking message` from the bridge.
    """
    return ['--log-level', f'{node}:={level}']


def _simulated_sensor_then(sensor: SimulatedSensor, manager: Node) -> list:
    """Start `bota_sim` as a device of its own, and the manager once its link exists.

    The simulator is not the workers' child: like a real sensor it outlives every F/T worker
    (ft/simulated_sensor.py). Its run directory goes when the launch shuts down.
    """
    # Without its sensor the cell is not a cell: a simulator that fails to start (the manager
    # would then never start) or dies ends the launch, as the manager's exit does.
    process = ExecuteProcess(cmd=sensor.command(), name='bota_sim', output='screen',
                             additional_env=lifetime.child_environment(),
                             sigterm_timeout=SIGTERM_TIMEOUT_S,
                             on_exit=Shutdown(reason='the simulated F/T sensor exited'))
    started: list[bool] = []

    def on_output(event: Any) -> list:
        if started or b'link: ' not in event.text:
            return []
        started.append(True)
        return [manager]

    return [
        process,
        RegisterEventHandler(OnProcessIO(target_action=process, on_stdout=on_output)),
        RegisterEventHandler(OnShutdown(
            on_shutdown=lambda *_: shutil.rmtree(sensor.run_dir, ignore_errors=True))),
    ]


def bridge_parameter_list(config: str, host: str, port: str) -> list:
    """Return the bridge's parameters: the file, then the launch arguments that are set."""
    overrides: dict = {}
    if host:
        overrides['host'] = host
    if port:
        if not port.isdigit():
            raise ValueError(f'bridge_port must be a number, got {port!r}')
        overrides['port'] = int(port)
    return [config, overrides] if overrides else [config]


def frame_ids(config: Path) -> dict[str, str]:
    """Return the `frame_id` of each device node in a parameter file (defaults when unset)."""
    return {node: str(node_parameters(config, node).get('frame_id', default))
            for node, default in DEFAULT_FRAMES.items()}
