"""Shared pieces of the F/T integration tests and the latency benchmark."""

from collections.abc import Sequence
from pathlib import Path
import subprocess
import sys
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from sensor_workers.diagnostics import level_of, status_values
from sensor_workers.ft.sim import counter_from_wrench, wrench_for
from sensor_workers.testing.processes import ManagedProcess, ProcessGroup

# The test must not lose samples itself. The probe subscribes best effort with a deep history,
# so a probe executor that falls behind finds the samples queued instead of overwritten, and the
# node's publisher keeps a deeper history through its QoS override hook: with Fast DDS shared
# memory a best-effort reader gets a sample from the writer's history, so the sensor-data depth
# of 5 loses samples whenever the reader thread is 5 ms late on a loaded machine. Measured here:
# switching the publisher to reliable instead delivered only ~560 of 800 msg/s.
DEPTH = 5000
SUBSCRIBER_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=DEPTH,
                            reliability=ReliabilityPolicy.BEST_EFFORT)
PUBLISHER_OVERRIDES = ('-p', 'qos_overrides./ft/wrench.publisher.depth:=1000')


def start_sim(procs: ProcessGroup, directory: Path, sinc: int,
              name: str = 'bota_sim') -> tuple[ManagedProcess, Path, Path]:
    link, control = directory / f'{name}.port', directory / f'{name}.control'
    sim = procs.start_python(name, 'sensor_workers.ft.sim', '--sinc', str(sinc),
                             '--link', str(link), '--control', str(control))
    sim.wait_for_output(r'^epoch_ns', timeout=15)
    return sim, link, control


def start_node(procs: ProcessGroup, port: str | Path, sinc: int, *extra: str) -> ManagedProcess:
    return procs.start_python('ft_node', 'sensor_workers.ft.node', '--ros-args',
                              '-p', f'port:={port}', '-p', f'sinc_length:={sinc}',
                              *PUBLISHER_OVERRIDES, *extra)


def check_stream(messages: list, expected_count: float) -> None:
    """No sample missing by the simulator's counter, every value what the simulator sent."""
    seen = counters(messages)
    # The probe may lag a little behind the stream: what matters is that nothing is missing.
    assert len(seen) >= 0.85 * expected_count
    assert seen == list(range(seen[0], seen[0] + len(seen))), 'samples missing or reordered'
    for counter, msg in zip(seen, messages, strict=True):
        assert wrench_tuple(msg) == wrench_for(counter)
    assert {m.header.frame_id for m in messages} == {'ft_sensor'}
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in messages]
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False))


def wrench_tuple(msg: Any) -> tuple[float, ...]:
    force, torque = msg.wrench.force, msg.wrench.torque
    return (force.x, force.y, force.z, torque.x, torque.y, torque.z)


def counters(messages: Sequence[Any]) -> list[int]:
    return [counter_from_wrench(wrench_tuple(m)) for m in messages]


def ft_diagnostics(received) -> list[tuple[int, dict[str, str]]]:
    """(level, values) of every /ft status received on /diagnostics so far."""
    messages, _ = received.snapshot()
    return [(level_of(s), status_values(s)) for m in messages if isinstance(m, DiagnosticArray)
            for s in m.status if s.name == '/ft']


def fifo_allowed() -> bool:
    """Tell whether this machine lets a process of ours run with SCHED_FIFO."""
    check = 'import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))'
    return subprocess.run([sys.executable, '-c', check], capture_output=True,
                          check=False).returncode == 0
