"""F/T sample -> subscriber latency at 800 Hz and ~1 kHz, against a raw serial baseline.

For each rate, in the same run:
- baseline: this process reads the simulator's pty directly (pyserial + the Gen0 parser);
- worker: bota_sim -> ft_node (builtin backend, own process) -> DDS -> a subscriber here.
Latency of a sample = arrival time here - the time the simulator was due to write it (its
counter is recovered from the values, the schedule from the simulator's `epoch_ns` line). Lost =
counters missing between the first and last received sample.

    python -m bench.ft_latency --seconds 10
"""

import argparse
from pathlib import Path
import re
import sys
import tempfile
import threading
import time

import numpy as np


def _summary(latencies_ns: list[int], counters: list[int]) -> dict[str, float]:
    if not latencies_ns:
        return {'n': 0, 'p50': float('nan'), 'p99': float('nan'), 'max': float('nan'), 'lost': 0}
    lat = np.asarray(latencies_ns, dtype=np.float64) / 1e6
    lost = (max(counters) - min(counters) + 1 - len(set(counters))) if counters else 0
    return {
        'n': len(lat), 'p50': float(np.percentile(lat, 50)), 'p99': float(np.percentile(lat, 99)),
        'max': float(lat.max()), 'lost': lost,
    }


def _schedule(sim) -> tuple[int, float]:
    match = re.search(r'^epoch_ns: (\d+) counter: (\d+) period_ns: ([\d.]+)', sim.output(),
                      re.MULTILINE)
    return int(match.group(1)), float(match.group(3))


def baseline(procs, directory: Path, sinc: int, seconds: float) -> dict[str, float]:
    import serial

    from sensor_workers.ft.protocol import FrameParser
    from sensor_workers.ft.sim import counter_from_wrench

    sim = procs.start_python(f'sim_raw_{sinc}', 'sensor_workers.ft.sim', '--sinc', str(sinc),
                             '--boot-mode', 'config', '--link', str(directory / f'raw{sinc}'))
    sim.wait_for_output('^epoch_ns', timeout=15)
    epoch_ns, period_ns = _schedule(sim)
    parser = FrameParser()
    latencies, counters = [], []
    with serial.Serial(str(directory / f'raw{sinc}'), 460800, timeout=0.05) as port:
        port.write(b'R\n')
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            data = port.read(port.in_waiting or 1)
            now = time.time_ns()
            for frame in parser.feed(data):
                counter = counter_from_wrench(frame.wrench)
                counters.append(counter)
                latencies.append(now - int(epoch_ns + counter * period_ns))
    sim.stop()
    return _summary(latencies[100:], counters[100:])


def worker(procs, probe, directory: Path, sinc: int, seconds: float) -> dict[str, float]:
    from geometry_msgs.msg import WrenchStamped
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    from sensor_workers.ft.sim import counter_from_wrench

    link = directory / f'node{sinc}'
    sim = procs.start_python(f'sim_node_{sinc}', 'sensor_workers.ft.sim', '--sinc', str(sinc),
                             '--link', str(link))
    sim.wait_for_output('^epoch_ns', timeout=15)
    epoch_ns, period_ns = _schedule(sim)
    latencies, counters = [], []
    recording = threading.Event()
    first = threading.Event()

    def on_wrench(msg) -> None:
        now = time.time_ns()
        first.set()
        if not recording.is_set():
            return
        w = msg.wrench
        counter = counter_from_wrench((w.force.x, w.force.y, w.force.z,
                                       w.torque.x, w.torque.y, w.torque.z))
        counters.append(counter)
        latencies.append(now - int(epoch_ns + counter * period_ns))

    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5000,
                     reliability=ReliabilityPolicy.BEST_EFFORT)
    probe.node.create_subscription(WrenchStamped, '/ft/wrench', on_wrench, qos)
    node = procs.start_python(f'ft_node_{sinc}', 'sensor_workers.ft.node', '--ros-args',
                              '-p', f'port:={link}', '-p', f'sinc_length:={sinc}',
                              '-p', 'autostart:=true',
                              '-p', 'qos_overrides./ft/wrench.publisher.depth:=1000')
    node.wait_for_output('configured builtin', timeout=20)
    first.wait(15.0)  # discovery
    time.sleep(0.5)  # warm-up
    recording.set()
    time.sleep(seconds)
    recording.clear()
    node.stop()
    sim.stop()
    return _summary(latencies, counters)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=float, default=10.0, help='measurement per set-up')
    args = parser.parse_args(argv)

    from sensor_workers.testing.ros_env import apply_isolated_ros_environment

    env = apply_isolated_ros_environment()
    from sensor_workers.testing.processes import ProcessGroup
    from sensor_workers.testing.ros_probe import RosProbe

    with tempfile.TemporaryDirectory(prefix='ft_latency_') as tmp:
        directory = Path(tmp)
        procs = ProcessGroup(directory, env)
        probe = RosProbe('ft_latency')
        try:
            print(f'{"set-up":<22}{"n":>7}{"p50 ms":>9}{"p99 ms":>9}{"max ms":>9}{"lost":>6}'
                  f'{"p99/base":>10}')
            for sinc, label in ((64, '800 Hz'), (51, '1 kHz')):
                base = baseline(procs, directory, sinc, args.seconds)
                result = worker(procs, probe, directory, sinc, args.seconds)
                for name, row in ((f'{label} raw pty', base), (f'{label} ft_node+DDS', result)):
                    ratio = row['p99'] / base['p99'] if base['p99'] > 0 else float('nan')
                    print(f'{name:<22}{row["n"]:>7}{row["p50"]:>9.3f}{row["p99"]:>9.3f}'
                          f'{row["max"]:>9.3f}{row["lost"]:>6}{ratio:>10.2f}', flush=True)
        finally:
            probe.close()
            procs.stop_all()
    return 0


if __name__ == '__main__':
    sys.exit(main())
