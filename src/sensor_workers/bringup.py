"""What launch/sim.launch.py and launch/bringup.launch.py start: manager, bridge, optional extras.

Importable only where ROS 2 `launch` and `launch_ros` are installed (a ROS 2 workspace); the
rest of the package never imports it.

Both set the Fast DDS profile (config/fastdds.xml: the 64 MB shared-memory segment large images
need) for every process they start, under both variable names Fast DDS versions read, unless
the user set one: the user's profile always wins (and our nodes load ours themselves otherwise).

The manager spawns and supervises the workers itself (restarts with backoff, degraded marking),
so no launch `respawn` is set on top of it: two supervisors would fight over the same device.
When the manager exits, the launch shuts down (the bridge alone would only report stale data).
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    OpaqueFunction,
    SetEnvironmentVariable,
    Shutdown,
)
from launch.conditions import IfCondition
from launch.substitutions import EnvironmentVariable, LaunchConfiguration
from launch_ros.actions import Node
import yaml

from sensor_workers.paths import FASTDDS_PROFILE_VARIABLES

PACKAGE = 'sensor_workers'
LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'fatal']
# After SIGINT, launch waits this long before SIGTERM: the manager needs stop_timeout_ms (3 s by
# default) to stop its workers, the bridge up to ~3 s to close its clients and server; a loaded
# machine (or a slow ROS shutdown) needs headroom beyond launch's default 5 s.
SIGTERM_TIMEOUT_S = '10'
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
        DeclareLaunchArgument(
            'config', default_value=share_file('config', config),
            description='ROS parameter file with sections camera, ft, manager and bridge; the '
                        'manager hands it to every worker it spawns.'),
        DeclareLaunchArgument(
            'bridge_host', default_value='',
            description="Address the bridge listens on; empty: the config file's bridge.host."),
        DeclareLaunchArgument(
            'bridge_port', default_value='',
            description="TCP port of the bridge; empty: the config file's bridge.port."),
        DeclareLaunchArgument(
            'bridge', default_value='true', choices=['true', 'false'],
            description='Start the websocket bridge.'),
        DeclareLaunchArgument(
            'log_level', default_value='info', choices=LOG_LEVELS,
            description='Log level of the manager and the bridge.'),
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
    ros_arguments = ['--log-level', LaunchConfiguration('log_level').perform(context)]
    bridge_parameters = bridge_parameter_list(
        config, LaunchConfiguration('bridge_host').perform(context),
        LaunchConfiguration('bridge_port').perform(context))
    frames = frame_ids(Path(config))
    return [
        Node(
            package=PACKAGE, executable='manager', name='manager', output='screen',
            parameters=[config, {'config_file': config}], ros_arguments=ros_arguments,
            sigterm_timeout=SIGTERM_TIMEOUT_S,
            on_exit=Shutdown(reason='the manager exited')),
        Node(
            package=PACKAGE, executable='bridge', name='bridge', output='screen',
            parameters=bridge_parameters, ros_arguments=ros_arguments,
            sigterm_timeout=SIGTERM_TIMEOUT_S,
            condition=IfCondition(LaunchConfiguration('bridge'))),
        Node(
            package='tf2_ros', executable='static_transform_publisher',
            name='ft_to_camera_static_tf', output='log',
            arguments=['--frame-id', frames['ft'], '--child-frame-id', frames['camera']],
            condition=IfCondition(LaunchConfiguration('static_tf'))),
        Node(
            package='rviz2', executable='rviz2', name='rviz2', output='log',
            arguments=['-d', share_file('config', 'sensor_workers.rviz')],
            condition=IfCondition(LaunchConfiguration('rviz'))),
        Node(
            package='diagnostic_aggregator', executable='aggregator_node', name='analyzers',
            output='log', parameters=[share_file('config', 'diagnostic_aggregator.yaml')],
            condition=IfCondition(LaunchConfiguration('aggregator'))),
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
    document = yaml.safe_load(config.read_text()) or {}
    frames = dict(DEFAULT_FRAMES)
    for node in frames:
        parameters = (document.get(node) or {}).get('ros__parameters') or {}
        frames[node] = str(parameters.get('frame_id', frames[node]))
    return frames
