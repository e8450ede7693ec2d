"""Camera worker throughput: delivered fps, drops and grab -> subscriber latency per image size.

Starts the camera worker on pypylon's emulator in its own process (Fast DDS profile from
config/fastdds.xml, private ROS domain), subscribes from this process, and for each size streams
for `--seconds` between a deactivate and an activate, so that frames published (the worker's
`frames_published`) and frames received can be compared exactly. Latency is the arrival time
here minus header.stamp (host time when the grab result was retrieved, the emulator has no
camera clock); the `dds` columns are the part of it from the worker's DDS write (the message's
source timestamp) to the callback here; `cam cpu` is the camera worker's CPU time (all its
threads: grab, copies, serialization, DDS sends) per frame it published. The `shm` columns are
the same frames read by a Python reader of the camera's shared-memory side channel
(`sensor_workers.side_channel.probe`, a process of its own, reading every frame in order). The
time of one memcpy of a frame, measured in the same run, is the baseline: the ratio latency /
memcpy is comparable across machines.

Then, unless `--no-bridge`, the bridge's CPU per frame: two bridges (no websocket client), one
taking frames from the side channel, one over DDS (`image_side_channel:=false`), each size for
`--seconds`: process CPU time (user + system) / frames the bridge received.

    python -m bench.camera_throughput --seconds 5
"""

import argparse
from pathlib import Path
import re
import statistics
import sys
import tempfile
import threading
import time
from typing import NamedTuple

import httpx
import numpy as np
import psutil

from sensor_workers.testing.ros_env import apply_isolated_ros_environment

FPS = 30.0
SIZES = ('640x480', '2448x2048', '4096x4096')


def memcpy_ms(nbytes: int, repeats: int = 20) -> float:
    """Median time of copying a frame-sized buffer into another (both already touched)."""
    source = np.random.default_rng(0).integers(0, 255, nbytes, dtype=np.uint8)
    target = np.empty_like(source)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        np.copyto(target, source)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


class Sample(NamedTuple):
    """One received image: grab stamp, DDS write (source timestamp), arrival here (ns)."""

    stamp_ns: int
    written_ns: int
    arrival_ns: int
    width: int


class SideSample(NamedTuple):
    """One frame the side-channel reader got: grab stamp, arrival there (ns)."""

    stamp_ns: int
    arrival_ns: int
    width: int


def side_samples(output: str) -> list[SideSample]:
    """Parse the per-frame lines of `side_channel.probe --lines`."""
    samples = []
    for match in re.finditer(r'^(\d+) (\d+) (\d+) \d+ \d+$', output, re.MULTILINE):
        samples.append(SideSample(*map(int, match.groups())))
    return samples


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Bench:
    def __init__(self, probe, reliable: bool, worker, side_reader) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from sensor_workers import qos
        from sensor_workers.diagnostics import status_values

        self.probe = probe
        self.worker = psutil.Process(worker.pid)
        self.side_reader = side_reader
        self._status_values = status_values
        self._lock = threading.Lock()
        self.samples: list[Sample] = []
        self._diag: tuple[float, dict[str, str]] | None = None
        image_qos = (QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=30,
                                reliability=ReliabilityPolicy.RELIABLE)
                     if reliable else qos.SENSOR_DATA)
        probe.node.create_subscription(Image, '/camera/image_raw', self._on_image, image_qos)
        probe.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 10)

    def _on_image(self, msg, info: dict) -> None:
        arrival = time.time_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self._lock:
            self.samples.append(Sample(stamp, info['source_timestamp'], arrival, msg.width))

    def _on_diag(self, msg) -> None:
        for status in msg.status:
            if status.name == '/camera':
                self._diag = (time.monotonic(), self._status_values(status))

    def take(self) -> list[Sample]:
        with self._lock:
            samples, self.samples = self.samples, []
        return samples

    def diagnostics(self, timeout: float = 5.0) -> dict[str, str]:
        asked = time.monotonic()
        while time.monotonic() < asked + timeout:
            diag = self._diag
            if diag is not None and diag[0] > asked:
                return diag[1]
            time.sleep(0.02)
        raise RuntimeError('no diagnostics from /camera')

    def wait_for_width(self, width: int, timeout: float = 10.0) -> bool:
        """Wait until a frame of the new size arrives; False if none does (all lost)."""
        self.take()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(sample.width == width for sample in self.take()):
                return True
            time.sleep(0.05)
        return False

    def run(self, width: int, height: int, seconds: float) -> dict[str, float]:
        results = self.probe.set_parameters('/camera', {'width': width, 'height': height})
        refused = [reason for ok, reason in results if not ok]
        if refused:
            raise RuntimeError(f'{width}x{height} refused: {refused}')
        self.wait_for_width(width)
        self.probe.change_state('/camera', 'deactivate')
        time.sleep(0.3)
        before = self.diagnostics()
        self.take()
        started_ns = time.time_ns()
        cpu_before = self.worker.cpu_times()
        self.probe.change_state('/camera', 'activate')
        time.sleep(seconds)
        self.probe.change_state('/camera', 'deactivate')
        cpu_after = self.worker.cpu_times()
        time.sleep(1.0)
        after = self.diagnostics()
        # Frames grabbed before this window (queued in a deep history) are not this run's.
        samples = [s for s in self.take() if s.width == width and s.stamp_ns >= started_ns]
        side = [s for s in side_samples(self.side_reader.output())
                if s.width == width and s.stamp_ns >= started_ns]
        self.probe.change_state('/camera', 'activate')
        published = int(after['frames_published']) - int(before['frames_published'])
        skipped = int(after['camera_skipped']) - int(before['camera_skipped'])
        latencies = [(s.arrival_ns - s.stamp_ns) / 1e6 for s in samples]
        in_dds = [(s.arrival_ns - s.written_ns) / 1e6 for s in samples]
        span_s = (samples[-1].stamp_ns - samples[0].stamp_ns) / 1e9 if len(samples) > 1 else 0.0
        side_latencies = [(s.arrival_ns - s.stamp_ns) / 1e6 for s in side]
        worker_cpu_ms = 1000 * (cpu_after.user + cpu_after.system
                                - cpu_before.user - cpu_before.system)
        return {
            'camera_cpu_ms': worker_cpu_ms / published if published else float('nan'),
            'shm_received': len(side),
            'shm_dropped': published - len(side) + skipped,
            'shm_p50_ms': percentile(side_latencies, 0.5) if side else float('nan'),
            'shm_p99_ms': percentile(side_latencies, 0.99) if side else float('nan'),
            'published_fps': published / seconds,
            'delivered_fps': (len(samples) - 1) / span_s if span_s else 0.0,
            'published': published,
            'received': len(samples),
            'dropped': published - len(samples) + skipped,
            'p50_ms': percentile(latencies, 0.5) if latencies else float('nan'),
            'p99_ms': percentile(latencies, 0.99) if latencies else float('nan'),
            'dds_p50_ms': percentile(in_dds, 0.5) if in_dds else float('nan'),
            'dds_p99_ms': percentile(in_dds, 0.99) if in_dds else float('nan'),
            'memcpy_ms': memcpy_ms(width * height),
        }


class BridgeCpu:
    """Two bridge processes, frames from the side channel and over DDS; CPU per frame each."""

    PATHS = ('side_channel', 'dds')

    def __init__(self, group) -> None:
        self.bridges = {}
        for path in self.PATHS:
            process = group.start_python(
                f'bridge_{path}', 'sensor_workers.bridge', '--ros-args', '-p', 'port:=0',
                '-p', "devices:=['camera']",
                '-p', f'image_side_channel:={"true" if path == "side_channel" else "false"}')
            url = process.wait_for_output(r'listening on (http://[0-9.]+:\d+)', 30).group(1)
            self.bridges[path] = (psutil.Process(process.pid), url)

    def _sample(self, path: str) -> tuple[float, int, str]:
        """Return the bridge's CPU seconds, frames received, and where it takes frames from."""
        process, url = self.bridges[path]
        times = process.cpu_times()
        bridge = httpx.get(f'{url}/status', timeout=10).json()['bridge']
        return (times.user + times.system, bridge['frames_received'],
                bridge['image_sources']['camera'])

    def run(self, seconds: float) -> dict[str, tuple[int, float, str]]:
        """Return, per path: frames received, CPU ms per frame, the source /status reports."""
        before = {path: self._sample(path) for path in self.PATHS}
        time.sleep(seconds)
        after = {path: self._sample(path) for path in self.PATHS}
        result = {}
        for path in self.PATHS:
            frames = after[path][1] - before[path][1]
            cpu_ms = (after[path][0] - before[path][0]) * 1000
            result[path] = (frames, cpu_ms / frames if frames else float('nan'), after[path][2])
        return result


def main(argv: list[str] | None = None, env: dict[str, str] | None = None) -> int:
    """Run it; `env` is an already isolated ROS environment (tests), else one is made."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=5.0, help='streaming time per size')
    parser.add_argument('--sizes', default=','.join(SIZES), help='WxH,WxH,... (Mono8)')
    parser.add_argument('--reliable', action='store_true',
                        help='reliable publisher and subscriber (depth 30) instead of the '
                             'best-effort default')
    parser.add_argument('--no-bridge', action='store_true',
                        help='skip the bridge CPU measurement')
    args = parser.parse_args(argv)
    sizes = [tuple(int(v) for v in size.split('x')) for size in args.sizes.split(',')]

    if env is None:
        env = apply_isolated_ros_environment()
    from sensor_workers.testing.processes import ProcessGroup
    from sensor_workers.testing.ros_probe import RosProbe

    extra = []
    if args.reliable:
        extra = ['-p', 'qos_overrides./camera/image_raw.publisher.reliability:=reliable',
                 '-p', 'qos_overrides./camera/image_raw.publisher.depth:=30']
    with tempfile.TemporaryDirectory(prefix='camera_bench_') as log_dir:
        group = ProcessGroup(Path(log_dir), env)
        probe = RosProbe('camera_bench')
        try:
            width, height = sizes[0]
            worker = group.start_python(
                'camera', 'sensor_workers.camera.node', '--ros-args',
                '-p', 'emulate:=true', '-p', 'autostart:=true', '-p', f'frame_rate:={FPS}',
                '-p', f'width:={width}', '-p', f'height:={height}', *extra)
            side_reader = group.start_python(
                'side_reader', 'sensor_workers.side_channel.probe', '/camera', '--lines',
                '--seconds', '1e9', '--first-frame-timeout', '1e9')
            bench = Bench(probe, args.reliable, worker, side_reader)
            if not bench.wait_for_width(width, timeout=30.0):
                print(worker.tail(), file=sys.stderr)
                raise RuntimeError('no frame from the camera worker')
            qos_name = 'reliable depth 30' if args.reliable else 'best effort (default)'
            print(f'camera_throughput: Mono8 at {FPS:g} fps requested, {args.seconds:g} s per '
                  f'size, {qos_name}, FASTDDS_DEFAULT_PROFILES_FILE='
                  f'{env["FASTDDS_DEFAULT_PROFILES_FILE"]}, load average '
                  f'{" ".join(f"{v:.1f}" for v in psutil.getloadavg())}')
            print(f'{"size":>10} {"pub fps":>8} {"recv fps":>8} {"pub":>5} {"recv":>5} '
                  f'{"drops":>5} {"p50 ms":>7} {"p99 ms":>7} {"dds p50":>7} {"dds p99":>7} '
                  f'{"memcpy ms":>9} '
                  f'{"p50/memcpy":>10} {"p99/memcpy":>10} '
                  f'{"shm recv":>8} {"shm drops":>9} {"shm p50":>7} {"shm p99":>7} '
                  f'{"cam cpu ms/frame":>16}')
            for width, height in sizes:
                r = bench.run(width, height, args.seconds)
                print(f'{width}x{height:<5} {r["published_fps"]:8.1f} {r["delivered_fps"]:8.1f} '
                      f'{r["published"]:5d} {r["received"]:5d} {r["dropped"]:5d} '
                      f'{r["p50_ms"]:7.1f} {r["p99_ms"]:7.1f} {r["dds_p50_ms"]:7.1f} '
                      f'{r["dds_p99_ms"]:7.1f} {r["memcpy_ms"]:9.2f} '
                      f'{r["p50_ms"] / r["memcpy_ms"]:10.1f} {r["p99_ms"] / r["memcpy_ms"]:10.1f} '
                      f'{r["shm_received"]:8d} {r["shm_dropped"]:9d} {r["shm_p50_ms"]:7.1f} '
                      f'{r["shm_p99_ms"]:7.1f} {r["camera_cpu_ms"]:16.1f}', flush=True)
            if not args.no_bridge:
                side_reader.stop()
                print_bridge_cpu(BridgeCpu(group), bench, sizes, args.seconds)
        finally:
            probe.close()
            group.stop_all()
    return 0


def print_bridge_cpu(bridges: BridgeCpu, bench: Bench, sizes, seconds: float) -> None:
    """Print the bridges' CPU per received frame at each size (no websocket clients)."""
    print(f'bridge CPU per frame received (no clients), {seconds:g} s per size, load average '
          f'{" ".join(f"{v:.1f}" for v in psutil.getloadavg())}')
    print(f'{"size":>10} {"path":>12} {"frames":>6} {"cpu ms/frame":>12} {"status says":>12}')
    for width, height in sizes:
        bench.probe.set_parameters('/camera', {'width': width, 'height': height})
        bench.wait_for_width(width)
        time.sleep(1.0)  # the bridges' first frames of the new size
        for path, (frames, per_frame, source) in bridges.run(seconds).items():
            print(f'{width}x{height:<5} {path:>12} {frames:6d} {per_frame:12.2f} {source:>12}',
                  flush=True)


if __name__ == '__main__':
    sys.exit(main())
