"""`sensor-workers`: run the cell without ros2 launch, and ask the bridge how it is doing.

sensor-workers up [--config FILE] [--no-bridge]
                                      manager (which spawns the workers) and bridge
sensor-workers bridge [--config FILE] the bridge alone (devices on another host)
sensor-workers status [--config FILE] the bridge's GET /status

The bridge is restarted with backoff whenever it dies (respawn.py); its web clients reconnect
and the workers are untouched. The manager supervises the workers itself; when the manager
ends, `up` stops everything.

With `ft.port: sim` (config/sim.yaml), `up` starts the simulated Bota sensor as a device of its
own (ft/simulated_sensor.py): a long-lived `bota_sim` that outlives every F/T worker.
"""

import argparse
from collections.abc import Sequence
import importlib.util
import json
import logging
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from sensor_workers import lifetime, paths
from sensor_workers.config_file import node_parameters
from sensor_workers.ft import simulated_sensor
from sensor_workers.ft.simulated_sensor import DEFAULT_DEVICES
from sensor_workers.respawn import RespawnedProcess
from sensor_workers.topics import DIAGNOSTICS, WORKER_EVENTS, device_states_topic, heartbeat_topic

BRIDGE_MODULE = 'sensor_workers.bridge'
MANAGER_MODULE = 'sensor_workers.manager.node'
# The manager needs its stop_timeout_ms (3 s by default) to stop the workers; then SIGKILL.
STOP_TIMEOUT_S = 10.0
# How often `up` looks at its children: a dead bridge is noticed within this.
TICK_S = 0.05


def _bridge_url(config: Path) -> tuple[str, str]:
    bridge = node_parameters(config, 'bridge')
    host = bridge.get('host', '127.0.0.1')
    return f'http://{host}:{bridge.get("port", 8080)}', bridge.get('auth_token', '')


def _ros_environment() -> dict[str, str]:
    """Our environment, kept on this host unless told otherwise, with the Fast DDS profile."""
    env = dict(os.environ)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env.update(paths.fastdds_profile_environment(env))
    env.setdefault('PYTHONUNBUFFERED', '1')
    env.update(lifetime.child_environment())
    return env


def _start(module: str, config: Path, env: dict[str, str],
           ros_args: Sequence[str] = ()) -> subprocess.Popen:
    # Own process group: a Ctrl-C in the terminal reaches only us, and we stop the children in
    # order (the manager first deactivates its workers).
    return subprocess.Popen(  # noqa: S603 our own interpreter and module
        [sys.executable, '-m', module, '--ros-args', '--params-file', str(config), *ros_args],
        env=env, stdin=subprocess.DEVNULL, process_group=0)


def up(config: Path, with_bridge: bool = True) -> int:
    """Run manager and bridge until SIGINT/SIGTERM or until the manager ends."""
    lifetime.die_with_parent()  # started by a supervisor that set the tie (tests, benchmarks)
    env = _ros_environment()
    run_dir = Path(tempfile.mkdtemp(prefix='sensor_workers_up_'))
    try:
        return _run(config, env, run_dir, with_bridge)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def bridge_alone(config: Path) -> int:
    """Run the bridge (restarted when it dies) until SIGINT/SIGTERM."""
    lifetime.die_with_parent()
    env = _ros_environment()
    bridge, bridge_pid = _respawned_bridge(config, env)
    url, _ = _bridge_url(config)
    print(f'sensor-workers: config {config}\n'
          f'  {_ros_variables(env)}\n'
          f'  bridge pid {bridge_pid}: {url}/ (status: {url}/status)\n'
          '  Ctrl-C stops it', flush=True)
    stop = _stop_on_signals()
    while not stop.wait(TICK_S):
        bridge.tick()
    return 0 if _stop_all(_running({'bridge': bridge.stop_supervising()})) else 1


def _respawned_bridge(config: Path, env: dict[str, str]) -> tuple[RespawnedProcess, int]:
    """Start the bridge under supervision; return the supervisor and the first bridge's pid."""
    bridge = RespawnedProcess('bridge', lambda: _start(BRIDGE_MODULE, config, env))
    bridge.start()
    if bridge.process is None:
        raise SystemExit(f'sensor-workers: the bridge could not be started ({BRIDGE_MODULE})')
    return bridge, bridge.process.pid


def _ros_variables(env: dict[str, str]) -> str:
    return (f'ROS_DOMAIN_ID={env.get("ROS_DOMAIN_ID", "0")} '
            f'ROS_AUTOMATIC_DISCOVERY_RANGE={env["ROS_AUTOMATIC_DISCOVERY_RANGE"]}')


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


def _run(config: Path, env: dict[str, str], run_dir: Path, with_bridge: bool) -> int:
    manager_section = node_parameters(config, 'manager')
    simulated = simulated_sensor.for_cell(config, lambda: run_dir)
    sim, manager_args = None, []
    if simulated is not None:
        sim = simulated.start(env, process_group=0)
        ft_parameters = simulated.manager_ft_parameters(manager_section)
        manager_args = ['-p', f'ft.parameters:={json.dumps(ft_parameters)}']
    manager = _start(MANAGER_MODULE, config, env, manager_args)
    bridge_installed = importlib.util.find_spec(BRIDGE_MODULE) is not None
    bridge, bridge_pid = (_respawned_bridge(config, env) if with_bridge and bridge_installed
                          else (None, 0))
    devices = manager_section.get('devices', DEFAULT_DEVICES)
    url, _ = _bridge_url(config)
    lines = [
        f'sensor-workers: config {config}',
        f'  {_ros_variables(env)}',
        f'  manager pid {manager.pid}: devices {", ".join(devices)}',
        f'  topics: {device_states_topic("manager")} {WORKER_EVENTS} {DIAGNOSTICS} '
        + ' '.join(heartbeat_topic(d) for d in devices),
        '  services: ' + ' '.join(f'/manager/{d}/restart' for d in devices),
    ]
    if simulated is not None and sim is not None:
        lines.append(f'  simulated F/T sensor pid {sim.pid} on {simulated.link} '
                     f'(fault injection: {simulated.control})')
    if bridge is not None:
        lines.append(f'  bridge pid {bridge_pid}: {url}/ (status: {url}/status)')
    elif with_bridge:
        lines.append(f'  bridge: {BRIDGE_MODULE} is not installed; running without it')
    else:
        lines.append('  bridge: not started here (--no-bridge); run `sensor-workers bridge`')
    lines.append('  Ctrl-C stops everything')
    print('\n'.join(lines), flush=True)

    stop = _stop_on_signals()
    manager_ended = False
    while not stop.wait(TICK_S):
        if manager.poll() is not None:
            print(f'sensor-workers: manager exited with code {manager.returncode}; '
                  'stopping', file=sys.stderr, flush=True)
            manager_ended = True
            break
        if bridge is not None:
            bridge.tick()
    children: dict[str, subprocess.Popen | None] = {'manager': manager}
    if bridge is not None:
        children['bridge'] = bridge.stop_supervising()
    clean = _stop_all(_running(children))
    if sim is not None:  # the sensor outlives its driver: stopped after the manager
        clean &= _stop_all({'simulated F/T sensor': sim})
    return 0 if not manager_ended and clean else 1


def _running(children: dict[str, subprocess.Popen | None]) -> dict[str, subprocess.Popen]:
    return {name: process for name, process in children.items() if process is not None}


def _stop_all(children: dict[str, subprocess.Popen]) -> bool:
    """Stop the children; return whether all of them exited cleanly (0 or by our SIGTERM)."""
    for process in children.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for name, process in children.items():
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f'sensor-workers: {name} ignored SIGTERM; killing it', file=sys.stderr)
            process.kill()
            process.wait()
    clean = True
    for name, process in children.items():
        # -SIGTERM: our SIGTERM arrived before the child installed its handler (still importing);
        # it was stopped as asked, which is not a failure.
        if process.returncode not in (0, -signal.SIGTERM):
            print(f'sensor-workers: {name} exited with code {process.returncode}',
                  file=sys.stderr)
            clean = False
    return clean


def status(config: Path, url: str | None, token: str | None) -> int:
    """Print the bridge's /status; exit 1 with a clear message when it does not answer."""
    default_url, default_token = _bridge_url(config)
    url = (url or default_url).rstrip('/')
    token = default_token if token is None else token
    request = urllib.request.Request(f'{url}/status')
    if token:
        request.add_header('Authorization', f'Bearer {token}')
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 http(s) only
            body = json.load(response)
    except urllib.error.HTTPError as error:
        print(f'sensor-workers: {url}/status answered {error.code} {error.reason}',
              file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, 'reason', error)
        print(f'sensor-workers: the bridge is not running at {url} ({reason}); '
              'start it with `sensor-workers up`', file=sys.stderr)
        return 1
    except json.JSONDecodeError:
        print(f'sensor-workers: {url}/status did not answer JSON', file=sys.stderr)
        return 1
    print(json.dumps(body, indent=2))
    return 0


def _default_config() -> Path:
    return paths.config_file('sim.yaml')


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='sensor-workers', description=__doc__.split('\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)
    up_parser = commands.add_parser('up', help='run the manager, its workers and the bridge')
    up_parser.add_argument('--config', type=Path, help='ROS parameter file (default: sim.yaml)')
    up_parser.add_argument('--no-bridge', dest='bridge', action='store_false',
                           help='run no bridge here (it runs on another host)')
    bridge_parser = commands.add_parser('bridge', help='run the bridge alone')
    bridge_parser.add_argument('--config', type=Path,
                               help='ROS parameter file with a bridge section (default: sim.yaml)')
    status_parser = commands.add_parser('status', help="print the bridge's /status")
    status_parser.add_argument('--config', type=Path, help='where the bridge section is')
    status_parser.add_argument('--url', help='bridge URL (default: from the config)')
    status_parser.add_argument('--token', help='bearer token (default: from the config)')
    args = parser.parse_args(argv)
    config = (args.config or _default_config()).resolve()
    if not config.is_file():
        parser.error(f'no such config file: {config}')
    logging.basicConfig(level=logging.INFO, format='sensor-workers: %(message)s')
    if args.command == 'up':
        return up(config, args.bridge)
    if args.command == 'bridge':
        return bridge_alone(config)
    return status(config, args.url, args.token)


if __name__ == '__main__':
    sys.exit(main())
