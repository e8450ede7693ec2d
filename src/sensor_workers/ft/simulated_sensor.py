"""The simulated Bota sensor as a process: its command line, its start, its place in a cell.

A real sensor outlives its driver, so the simulated one must too. In a cell whose config says
`ft.port: sim`, `sensor-workers up` and sim.launch.py start one long-lived `bota_sim` on a link
in a run directory of their own (two cells on one machine never share it) and hand the manager
`port:=<link>` for every F/T worker it spawns; a kill -9 of a worker leaves the sensor running.
A worker run alone with `port: sim` starts a simulator of its own (ft/node.py).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from sensor_workers.config_file import node_parameters

SIM_PORT = 'sim'
SIM_MODULE = 'sensor_workers.ft.sim'
START_TIMEOUT_S = 10.0
DEFAULT_SINC_LENGTH = 64
DEFAULT_DEVICES = ['camera', 'ft']  # the manager's `devices` default


@dataclass(frozen=True)
class SimulatedSensor:
    """A `bota_sim` process-to-be in `run_dir`: serial link, fault socket and log there."""

    run_dir: Path
    sinc_length: int = DEFAULT_SINC_LENGTH
    # The simulator removes `run_dir` when it stops: for a worker's own simulator, whose worker
    # may be SIGKILLed (the simulator then gets SIGTERM from its parent-death tie).
    removes_run_dir: bool = False

    @property
    def link(self) -> Path:
        return self.run_dir / 'ft_port'

    @property
    def control(self) -> Path:
        return self.run_dir / 'ft_control'

    @property
    def log_path(self) -> Path:
        return self.run_dir / 'bota_sim.log'

    def command(self) -> list[str]:
        command = [sys.executable, '-m', SIM_MODULE, '--sinc', str(self.sinc_length),
                   '--link', str(self.link), '--control', str(self.control)]
        return command + ['--remove-dir', str(self.run_dir)] if self.removes_run_dir else command

    def start(self, env: Mapping[str, str], **popen_options: Any) -> subprocess.Popen:
        """Start the simulator and return once its link exists; raise RuntimeError otherwise."""
        with open(self.log_path, 'wb') as log:
            process = subprocess.Popen(  # noqa: S603 our own interpreter and module
                self.command(), env=dict(env), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, **popen_options)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.link.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise RuntimeError('the simulated F/T sensor did not start: '
                                   + self.log_path.read_text(errors='replace'))
            time.sleep(0.02)
        return process

    def manager_ft_parameters(self, manager: Mapping) -> list[str]:
        """Return the manager's `ft.parameters` with `port:=<link>` added."""
        return [*(manager.get('ft') or {}).get('parameters', []), f'port:={self.link}']


class OwnSimulator:
    """A worker's own simulator (`port: sim` without a cell): a temporary run dir, a child.

    The simulator removes its run dir itself when its worker is SIGKILLed (parent-death tie);
    `stop()` does both for a worker that ends normally.
    """

    STOP_TIMEOUT_S = 3.0

    def __init__(self, sinc_length: int) -> None:
        self.sensor = SimulatedSensor(Path(tempfile.mkdtemp(prefix='ft_sim_')), sinc_length,
                                      removes_run_dir=True)
        self.process: subprocess.Popen | None = None

    def start(self, env: Mapping[str, str]) -> subprocess.Popen:
        """Start the child (its port link: `sensor.link`); raise RuntimeError if it fails."""
        try:
            self.process = self.sensor.start(env)
        except RuntimeError:
            self.stop()
            raise
        return self.process

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(self.STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(self.STOP_TIMEOUT_S)
            self.process = None
        shutil.rmtree(self.sensor.run_dir, ignore_errors=True)


def for_cell(config: Path, make_run_dir: Callable[[], Path]) -> SimulatedSensor | None:
    """Return the simulator a manager-supervised cell needs, or None (no F/T, or a real port).

    `make_run_dir` is called only when a simulator is needed. The simulator removes that
    directory when it exits, also when whoever started it was SIGKILLed (it then gets SIGTERM
    through its parent-death tie): a killed `sensor-workers up` or `ros2 launch` leaves none.
    """
    manager = node_parameters(config, 'manager')
    ft = node_parameters(config, 'ft')
    if 'ft' not in manager.get('devices', DEFAULT_DEVICES) or ft.get('port') != SIM_PORT:
        return None
    return SimulatedSensor(make_run_dir(), int(ft.get('sinc_length', DEFAULT_SINC_LENGTH)),
                           removes_run_dir=True)
