"""Shared pieces of the manager integration tests and the recovery benchmark."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
import importlib.util
from pathlib import Path
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
import psutil
import yaml

from sensor_workers import paths, qos
from sensor_workers.diagnostics import latest_status, level_of, status_values
from sensor_workers.testing.processes import ManagedProcess, ProcessGroup
from sensor_workers.testing.ros_probe import Received, RosProbe
from sensor_workers.testing.waiting import wait_until


def available_devices() -> list[str]:
    """Return the device workers present in this tree (camera and ft are built in parallel)."""
    return [d for d in ('camera', 'ft')
            if importlib.util.find_spec(f'sensor_workers.{d}') is not None
            and importlib.util.find_spec(f'sensor_workers.{d}.node') is not None]


def write_config(directory: Path, manager: Mapping[str, Any],
                 sections: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """Write sim.yaml with manager parameters overridden and node sections added or replaced."""
    config = yaml.safe_load(paths.config_file('sim.yaml').read_text())
    config['manager']['ros__parameters'].update(manager)
    for name, values in (sections or {}).items():
        config[name] = {'ros__parameters': dict(values)}
    path = directory / 'manager_test.yaml'
    path.write_text(yaml.safe_dump(config))
    return path


def start_manager(procs: ProcessGroup, config: Path, name: str = 'manager') -> ManagedProcess:
    return procs.start_python(name, 'sensor_workers.manager.node', '--ros-args',
                              '--params-file', str(config))


@dataclass
class Watch:
    """What a probe sees of the manager: device states and safety events."""

    states: Received
    events: Received

    @classmethod
    def attach(cls, probe: RosProbe) -> 'Watch':
        return cls(probe.collect(DiagnosticArray, '/manager/device_states', qos.LATCHED),
                   probe.collect(DiagnosticStatus, '/safety/worker_events', qos.LATCHED_EVENTS))

    def state(self, device: str) -> dict[str, str]:
        """Return the latest published values of `device` ({} before the first)."""
        status = latest_status(self.states.snapshot()[0], device)
        if status is None:
            return {}
        return {**status_values(status), 'level': str(level_of(status))}

    def history(self, device: str) -> list[tuple[float, dict[str, str]]]:
        messages, arrival = self.states.snapshot()
        return [(t, status_values(s)) for m, t in zip(messages, arrival, strict=True)
                for s in m.status if s.name == device]

    def event_list(self, device: str, kind: str | None = None,
                   after: float = 0.0) -> list[tuple[float, int, dict[str, str], str]]:
        """(arrival, level, values, message) of the events of `device` received after `after`."""
        messages, arrival = self.events.snapshot()
        return [(t, level_of(m), status_values(m), m.message)
                for m, t in zip(messages, arrival, strict=True)
                if m.name == device and t >= after
                and (kind is None or status_values(m)['event'] == kind)]

    def wait_active(self, devices: Sequence[str], timeout: float,
                    not_pid: int | None = None) -> dict[str, dict[str, str]]:
        def ready() -> dict[str, dict[str, str]] | None:
            states = {d: self.state(d) for d in devices}
            if all(s.get('state') == 'active' and s.get('pid') != str(not_pid)
                   for s in states.values()):
                return states
            return None

        return wait_until(ready, timeout, f'{", ".join(devices)} active', period=0.01)


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def gone(processes: Sequence[psutil.Process]) -> bool:
    """Return whether none of `processes` runs any more (zombies count as gone)."""
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True
