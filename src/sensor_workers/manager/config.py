"""The manager's parameters, and what they turn into: worker specs and policy settings.

Declared on the node (each documents and range-checks itself, params.py); read here once, on
configure, into the plain objects the rest of the manager works with: a `WorkerSpec` per device
(process.py), a `PolicyConfig` (policy.py) and a `LivenessConfig` (liveness.py).
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.logging import LoggingSeverity
from rclpy.node import Node
from rclpy.parameter import Parameter

from sensor_workers import paths
from sensor_workers.manager.liveness import LivenessConfig
from sensor_workers.manager.policy import PolicyConfig
from sensor_workers.manager.process import WorkerSpec, parse_assignments, parse_env
from sensor_workers.params import declare


def declare_parameters(node: Node) -> None:
    """Declare the manager's parameters, and those of every device it is told to supervise."""
    declare(node, 'autostart', True,
            'Configure and activate on start (`sensor-workers up` and launch need no more).',
            read_only=True)
    declare(node, 'devices', ['camera', 'ft'],
            'Device (worker node) names to supervise.', read_only=True)
    declare(node, 'config_file', '',
            'Parameter file passed to every worker; empty: the file the manager was '
            'started with, else config/sim.yaml.', read_only=True)
    declare(node, 'heartbeat_period_ms', 100,
            'Heartbeat period asked of every worker.', read_only=True, int_range=(10, 5000))
    declare(node, 'heartbeat_timeout_ms', 300,
            'No heartbeat for this long while active: failure.', int_range=(20, 60000))
    declare(node, 'heartbeat_grace_ms', 2000,
            'How long a worker whose loop thread is blocked or starved of CPU (not stopped, '
            'not gone) may stay silent before it counts as hung.', int_range=(20, 600000))
    declare(node, 'stall_timeout_ms', 2000,
            'Heartbeat `samples` not advancing this long while active: stall.',
            int_range=(100, 600000))
    declare(node, 'start_timeout_ms', 20000,
            'Spawned but not active after this long: failed start.',
            int_range=(500, 600000))
    declare(node, 'restart_backoff_initial_ms', 20,
            'Delay before the first restart; doubles per consecutive failure.',
            int_range=(0, 600000))
    declare(node, 'restart_backoff_max_ms', 5000,
            'Cap of the restart delay; degraded devices are retried at this period.',
            int_range=(0, 3600000))
    declare(node, 'restart_backoff_reset_s', 10.0,
            'Active this long without failure: the delay starts from the initial one again.',
            float_range=(0.0, 86400.0))
    declare(node, 'degraded_after_failures', 5,
            'Failures within failure_window_s that mark a device degraded.',
            int_range=(1, 1000))
    declare(node, 'failure_window_s', 30.0,
            'Window in which failures are counted for degraded.',
            float_range=(0.1, 86400.0))
    declare(node, 'kill_timeout_ms', 500,
            'After a failure: SIGTERM, then SIGKILL after this long.', int_range=(0, 60000))
    declare(node, 'warm_standby', True,
            'Keep a spare worker process per active device, imported and discovered, to '
            'take over at once after a failure.', read_only=True)
    declare(node, 'worker_autostart', True,
            'Start workers with autostart, so they configure and activate themselves and '
            'data flows before the manager has discovered their lifecycle services (which '
            'takes 0.5-2 s after a kill); false: the manager drives every transition.',
            read_only=True)
    declare(node, 'stop_timeout_ms', 3000,
            'On a requested stop: SIGTERM, then SIGKILL after this long.',
            int_range=(0, 60000))
    for device in node.get_parameter('devices').value:
        declare_device_parameters(node, device)


def declare_device_parameters(node: Node, device: str) -> None:
    # A second camera is `camera_left` with `kind: camera`: its own node name, parameter
    # section and process, the worker module of its kind.
    kind = declare(node, f'{device}.kind', device,
                   'Kind of worker (camera, ft); names its default module.', read_only=True)
    declare(node, f'{device}.module', f'sensor_workers.{kind}.node',
            'Python module of the worker (run with `python -m`); default: that of its '
            'kind.', read_only=True)
    declare(node, f'{device}.config', '',
            'Parameter file of this worker; empty: config_file.', read_only=True)
    declare(node, f'{device}.nice', 0, 'Nice value of the worker process (0: unchanged).',
            read_only=True, int_range=(-20, 19))
    declare(node, f'{device}.rt_priority', 0,
            'SCHED_FIFO priority of the worker process (0: normal scheduling).',
            read_only=True, int_range=(0, 99))
    for name, kind, description in (
        ('cpu_affinity', Parameter.Type.INTEGER_ARRAY, 'CPUs the worker may run on.'),
        ('env', Parameter.Type.STRING_ARRAY, 'Extra environment, KEY=value entries.'),
        ('parameters', Parameter.Type.STRING_ARRAY,
         'Extra parameter overrides of the worker, name:=value entries.'),
    ):
        node.declare_parameter(f'{device}.{name}', kind,
                               ParameterDescriptor(description=description, read_only=True))


def config_file(node: Node, started_with: Path | None) -> Path:
    """Return `config_file`, else the file the manager was started with, else sim.yaml."""
    configured = node.get_parameter('config_file').value
    if configured:
        return Path(configured)
    if started_with is not None:
        return started_with
    return paths.config_file('sim.yaml')


def worker_spec(node: Node, device: str, default_params_file: Path) -> WorkerSpec:
    """Describe the worker of `device` from its parameters; ValueError on a malformed entry."""
    def value(name: str) -> Any:
        try:
            return node.get_parameter(f'{device}.{name}').value
        except ParameterUninitializedException:  # an array parameter nobody set
            return None

    overrides = {'heartbeat_period_ms': str(node.get_parameter('heartbeat_period_ms').value)}
    if node.get_parameter('worker_autostart').value:
        overrides['autostart'] = 'true'
    overrides.update(parse_assignments(value('parameters') or [], ':=',
                                       f'{device}.parameters entry'))
    return WorkerSpec(
        name=device,
        module=value('module'),
        params_file=Path(value('config')) if value('config') else default_params_file,
        parameters=overrides,
        env=parse_env(value('env') or []),
        cpu_affinity=tuple(value('cpu_affinity') or ()),
        nice=value('nice'),
        rt_priority=value('rt_priority'),
        # The level `--log-level manager:=<level>` gave the manager reaches its workers.
        log_level=LoggingSeverity(node.get_logger().get_effective_level()).name.lower(),
    )


def worker_specs(node: Node, default_params_file: Path) -> list[WorkerSpec]:
    """Describe the worker of every device; ValueError or FileNotFoundError on a bad entry."""
    specs = [worker_spec(node, device, default_params_file)
             for device in node.get_parameter('devices').value]
    for spec in specs:
        if spec.params_file is not None and not spec.params_file.is_file():
            raise FileNotFoundError(f'{spec.name}: no parameter file {spec.params_file}')
    return specs


def seconds(node: Node, name: str) -> float:
    """Return the millisecond parameter `name` in seconds."""
    return node.get_parameter(name).value / 1000.0


def policy_config(node: Node) -> PolicyConfig:
    """Return the restart policy's settings, from the manager's parameters."""
    initial_s = seconds(node, 'restart_backoff_initial_ms')
    return PolicyConfig(
        backoff_initial_s=initial_s,
        backoff_max_s=max(seconds(node, 'restart_backoff_max_ms'), initial_s),
        backoff_reset_s=node.get_parameter('restart_backoff_reset_s').value,
        degraded_after_failures=node.get_parameter('degraded_after_failures').value,
        failure_window_s=node.get_parameter('failure_window_s').value,
        start_timeout_s=seconds(node, 'start_timeout_ms'),
    )


def liveness_config(node: Node, first_beat_grace_s: float) -> LivenessConfig:
    """Return the liveness judge's settings, from the manager's parameters."""
    timeout_s = seconds(node, 'heartbeat_timeout_ms')
    return LivenessConfig(
        heartbeat_timeout_s=timeout_s,
        stall_timeout_s=seconds(node, 'stall_timeout_ms'),
        grace_s=max(seconds(node, 'heartbeat_grace_ms'), timeout_s),
        first_beat_grace_s=first_beat_grace_s)


def params_file_in(args: Sequence[str]) -> Path | None:
    """Return the last `--params-file` given in ROS arguments, if any."""
    found = None
    for flag, value in zip(args, args[1:], strict=False):
        if flag == '--params-file':
            found = Path(value)
    return found
