"""Isolation: does a saturated web side disturb the F/T stream? Three set-ups, one run.

The F/T stream (bota_sim on a pseudo-terminal -> F/T read loop -> /ft/wrench) is measured at
800 Hz and ~1 kHz by two clients in their own processes: a ROS subscriber and a websocket client
of the bridge. Set-ups, all in the same run:
- a        idle: F/T worker in its own process, bridge running, camera inactive, no load;
- b        our design under load: the same, with the camera streaming 2448x2048 Mono8 at 30 fps,
           the bridge saturated by bench.load (websocket clients of wrench, raw and JPEG images at
           full size, one client that never reads, CPU-bound HTTP requests) and allocation churn
           inside the bridge process (bench.loaded_bridge);
- b_tuned  b with the manager's per-worker settings for the F/T worker: cpu_affinity [last CPU]
           and rt_priority 50 (applied by the manager's own `tune()`), plus the worker's
           rt_priority parameter for its read loop thread;
- b_core   b_tuned, and the web side (bridge, load generator, camera worker) pinned to the other
           CPUs, so the F/T worker's CPU stays free for it and for the kernel's tty work;
- c        what the design moved away from: the same F/T node and read loop as a thread inside
           the loaded bridge/uvicorn process, same load;
- c_tuned  c with the read loop thread at SCHED_FIFO 50 (the F/T node's rt_priority);
- c_idle   (optional) c without the load.
The simulator stands in for hardware: it runs at SCHED_FIFO 60 and the measuring clients at
SCHED_FIFO 40 in every set-up (when permitted, `--no-rt` turns this off), so that the figures
describe the F/T path and not the clock or the thermometer.

Next to it, in every set-up, a second simulator is read directly by a SCHED_FIFO process
(`pty floor`): no worker, no DDS. Its latency is the floor the OS's pseudo-terminal path (tty
data is handed over by a kernel worker thread at normal priority) sets on this machine, which no
design can beat.

Per set-up: sample latency (arrival - time the simulator was due to write the sample) and
inter-arrival jitter (|gap between consecutive samples - period|; websocket: between batches -
wrench_batch_ms) as p50/p99/p99.9/max, and lost samples (due inside the window, not received
within DRAIN_S after it: a sample that comes later than the window is late, not lost). The drain
ends earlier once every probe has a sample due after the window (ft_probe's progress file).

    python -m bench.isolation --seconds 15 [--rates 800,1000] [--setups a,b,b_tuned,c,c_tuned]
"""

import argparse
from dataclasses import asdict, dataclass
from functools import partial
import json
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import psutil

from bench.ft_probe import progress_path

REPO = Path(__file__).resolve().parents[1]
SINC = {800: 64, 1000: 51}  # sample period = sinc / 51200 s
SETUPS = ('a', 'b', 'b_tuned', 'b_core', 'c', 'c_tuned', 'c_idle')
DEFAULT_SETUPS = ('a', 'b', 'b_tuned', 'b_core', 'c', 'c_tuned')
DESCRIPTION = {
    'a': 'own process, idle',
    'b': 'own process, bridge saturated',
    'b_tuned': 'own process + affinity/SCHED_FIFO, bridge saturated',
    'b_core': 'b_tuned + web side pinned to the other CPUs',
    'c': 'thread in the saturated bridge',
    'c_tuned': 'SCHED_FIFO thread in the saturated bridge',
    'c_idle': 'thread in the idle bridge',
}
SIM_RT = 60
PROBE_RT = 40
WORKER_RT = 50
COUNTER_MODULUS = 1_000_000
WARMUP_S = 2.0
CLOSE_WAIT_S = 15.0  # the load generator ends by itself; this long at most after its time
# The clients keep receiving this long after a window before anything is stopped. In set-up c
# the F/T samples reached the clients 2.8 s late (the loop publisher, 3000 deep, drained by a
# thread starved in the loaded bridge, then the bridge's own queues); stopped earlier, the
# probes counted those samples as lost and the websocket client got none of the window.
DRAIN_S = 6.0
CAMERA_SIZE = (2448, 2048)
WRENCH_BATCH_MS = 20


@dataclass(frozen=True)
class Stream:
    """A probe's view of a simulator: where it writes its newest counter, and the sim's clock."""

    progress: Path
    epoch_ns: int
    period_ns: float

    def caught_up(self, end_ns: int) -> bool:
        """Tell whether the probe has received a sample due at or after `end_ns`."""
        try:
            newest = int(self.progress.read_text())
        except (OSError, ValueError):  # nothing received yet, or replaced meanwhile
            return False
        due = round((end_ns - self.epoch_ns) / self.period_ns) % COUNTER_MODULUS
        return (newest - due) % COUNTER_MODULUS < COUNTER_MODULUS // 2


@dataclass
class Load:
    """How hard bench.load and the churn push on the bridge."""

    wrench: int = 8
    image_raw: int = 2
    image_jpeg: int = 2
    events: int = 2
    stalled: int = 1
    http: int = 4
    churn_objects: int = 400_000

    def args(self) -> list[str]:
        return ['--wrench', str(self.wrench), '--image-raw', str(self.image_raw),
                '--image-jpeg', str(self.image_jpeg), '--events', str(self.events),
                '--stalled', str(self.stalled), '--http', str(self.http)]


TINY_LOAD = Load(wrench=2, image_raw=1, image_jpeg=1, events=1, stalled=1, http=1,
                 churn_objects=50_000)


# Analysis (pure numpy)

def unwrap_counters(counter_mod: np.ndarray, arrival_ns: np.ndarray, epoch_ns: int,
                    period_ns: float) -> np.ndarray:
    """Absolute sample counters from `counter % 1e6`, using the arrival time as a hint."""
    estimate = (arrival_ns - epoch_ns) / period_ns
    turns = np.round((estimate - counter_mod) / COUNTER_MODULUS)
    return (counter_mod + turns * COUNTER_MODULUS).astype(np.int64)


def percentiles(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {'p50': float('nan'), 'p99': float('nan'), 'p999': float('nan'),
                'max': float('nan')}
    p50, p99, p999 = np.percentile(values, [50, 99, 99.9])
    return {'p50': float(p50), 'p99': float(p99), 'p999': float(p999),
            'max': float(values.max())}


def analyse(arrival_ns: np.ndarray, counter_mod: np.ndarray, epoch_ns: int, period_ns: float,
            start_ns: int, end_ns: int, batch_period_ns: float | None = None) -> dict:
    """Figures of the samples due in [start_ns, end_ns).

    `batch_period_ns`: the samples arrive in batches (websocket); jitter is then taken between
    batch arrivals against that period instead of between samples against the sample period.
    Returns latency_ms and jitter_ms percentiles, received, expected, lost, and the raw
    latencies (ms, for the CDF plots).
    """
    arrival_ns = np.asarray(arrival_ns, dtype=np.int64)
    counters = unwrap_counters(np.asarray(counter_mod, dtype=np.int64), arrival_ns, epoch_ns,
                               period_ns)
    due = epoch_ns + counters * period_ns
    inside = (due >= start_ns) & (due < end_ns)
    counters, arrival_ns, due = counters[inside], arrival_ns[inside], due[inside]
    # Keep the first arrival of every sample, in sample order.
    counters, first = np.unique(counters, return_index=True)
    arrival_ns, due = arrival_ns[first], due[first]
    first_due = int(np.ceil((start_ns - epoch_ns) / period_ns))
    last_due = int(np.ceil((end_ns - epoch_ns) / period_ns)) - 1
    expected = max(0, last_due - first_due + 1)
    latency_ms = (arrival_ns - due) / 1e6
    if batch_period_ns is None:
        consecutive = np.diff(counters) == 1
        gaps = np.diff(arrival_ns)[consecutive]
        jitter_ms = np.abs(gaps - period_ns) / 1e6
    else:
        batches = np.unique(arrival_ns)
        jitter_ms = np.abs(np.diff(batches) - batch_period_ns) / 1e6
    return {
        'received': int(len(counters)), 'expected': expected,
        'lost': int(expected - len(counters)),
        'latency_ms': percentiles(latency_ms), 'jitter_ms': percentiles(jitter_ms),
        'latencies': latency_ms,
    }


# Running the set-ups

@dataclass
class Window:
    setup: str
    rate: int
    start_ns: int
    end_ns: int
    # What the machine was doing meanwhile: busy % of all CPUs, CPU % of the bridge process
    # (100 = one core), 1-minute load average at the end.
    machine_busy: float = float('nan')
    bridge_cpu: float = float('nan')
    loadavg: float = float('nan')


def realtime(pid: int, priority: int) -> str | None:
    """Put a process (and the threads it creates later) at SCHED_FIFO; return why not."""
    try:
        os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as error:
        return f'SCHED_FIFO {priority} for pid {pid} refused: {error.strerror}'
    return None


def pin_threads(pid: int, cpus: set[int]) -> str | None:
    """Set the CPU affinity of every thread of a running process; return why not."""
    try:
        for tid in os.listdir(f'/proc/{pid}/task'):
            try:
                os.sched_setaffinity(int(tid), cpus)
            except ProcessLookupError:
                continue
    except OSError as error:
        return f'pinning pid {pid} to CPUs {sorted(cpus)} failed: {error.strerror}'
    return None


class Run:
    """The processes of one isolation run and the windows measured."""

    def __init__(self, directory: Path, seconds: float, load: Load, rt: bool,
                 camera_size: tuple[int, int] | None) -> None:
        from sensor_workers.testing.processes import ProcessGroup
        from sensor_workers.testing.ros_env import apply_isolated_ros_environment
        from sensor_workers.testing.ros_probe import RosProbe

        self.env = apply_isolated_ros_environment()
        pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get('PYTHONPATH')]))
        self.procs = ProcessGroup(directory, {**self.env, 'PYTHONPATH': pythonpath})
        self.directory = directory
        self.seconds = seconds
        self.load = load
        self.rt = rt
        self.camera_size = camera_size
        self.notes: list[str] = []
        self.windows: list[Window] = []
        self.churn_flag = directory / 'churn'
        self.control = RosProbe('isolation_control')
        self._heartbeats = self._collect_heartbeats()
        self.camera = None
        self.bridge_url = ''
        self.bridge_pid = 0
        self.loads: dict[tuple[str, int], dict] = {}
        self.streams: list[Stream] = []  # the probes of the windows measured now

    def _collect_heartbeats(self):
        from diagnostic_msgs.msg import DiagnosticStatus

        from sensor_workers import qos

        return self.control.collect(DiagnosticStatus, '/ft/heartbeat', qos.HEARTBEAT)

    def close(self) -> None:
        self.churn_flag.unlink(missing_ok=True)
        self.control.close()
        self.procs.stop_all()

    def note(self, text: str | None) -> None:
        if text and text not in self.notes:
            self.notes.append(text)

    # Processes

    def start(self, name: str, module: str, *args: str, rt: int = 0):
        process = self.procs.start_python(name, module, *args)
        if rt and self.rt:
            self.note(realtime(process.pid, rt))
        return process

    def stop(self, process) -> None:
        code = process.stop()
        self.procs.processes.remove(process)
        if code == -signal.SIGKILL:
            self.note(f'{process.name} did not end on SIGTERM and was killed')

    def start_camera(self) -> None:
        width, height = self.camera_size
        self.camera = self.procs.start_python(
            'camera', 'sensor_workers.camera.node', '--ros-args', '-p', 'emulate:=true',
            '-p', 'autostart:=true', '-p', 'frame_rate:=30.0', '-p', f'width:={width}',
            '-p', f'height:={height}', env={'PYLON_CAMEMU': '1'})
        self.camera.wait_for_output('opened ', timeout=60)
        deadline = time.monotonic() + 30
        while self.control.get_state('/camera', timeout=10) != 'active':
            if time.monotonic() > deadline:
                raise TimeoutError('the camera worker did not become active')
            time.sleep(0.1)

    def camera_streaming(self, on: bool) -> None:
        if self.camera is None:
            return
        state = self.control.get_state('/camera', timeout=10)
        if on and state != 'active':
            self.control.change_state('/camera', 'activate')
        elif not on and state == 'active':
            self.control.change_state('/camera', 'deactivate')

    def start_sim(self, rate: int, link: Path, name: str = ''):
        sim = self.start(name or f'sim_{rate}', 'sensor_workers.ft.sim', '--sinc', str(SINC[rate]),
                         '--link', str(link), rt=SIM_RT)
        match = sim.wait_for_output(r'^epoch_ns: (\d+) counter: (\d+) period_ns: ([\d.]+)',
                                    timeout=30)
        return sim, int(match.group(1)), float(match.group(3))

    def start_bridge(self, embed: tuple[Path, int, int] | None = None):
        args = ['--churn-flag', str(self.churn_flag),
                '--churn-objects', str(self.load.churn_objects)]
        if embed is not None:
            link, rate, rt_priority = embed
            args += ['--embed-ft', str(link), '--sinc', str(SINC[rate]),
                     '--rt-priority', str(rt_priority)]
        bridge = self.start('bridge' + ('_embedded' if embed else ''), 'bench.loaded_bridge',
                            *args, '--', '--ros-args', '-p', 'port:=0', '-p', 'max_clients:=64',
                            '-p', f'wrench_batch_ms:={WRENCH_BATCH_MS}')
        match = bridge.wait_for_output(r'listening on http://127\.0\.0\.1:(\d+)', timeout=60)
        self.bridge_pid = bridge.pid
        self.bridge_url = f'http://127.0.0.1:{match.group(1)}'
        return bridge

    def start_ft(self, rate: int, link: Path, tuned: bool):
        from sensor_workers.manager.process import WorkerSpec, tune

        args = ['--ros-args', '-p', f'port:={link}', '-p', f'sinc_length:={SINC[rate]}',
                '-p', 'autostart:=true']
        if tuned:
            args += ['-p', f'rt_priority:={WORKER_RT}']
        ft = self.procs.start_python(f'ft_{rate}' + ('_tuned' if tuned else ''),
                                     'sensor_workers.ft.node', *args)
        if tuned:
            spec = WorkerSpec(name='ft', module='sensor_workers.ft.node',
                              cpu_affinity=(os.cpu_count() - 1,), rt_priority=WORKER_RT)
            for warning in tune(ft.pid, spec):
                self.note(f'manager tune(): {warning}')
        return ft

    def wait_streaming(self, rate: int, timeout: float = 60.0) -> None:
        """Wait until /ft/heartbeat reports the nominal rate for a second (caught up)."""
        from sensor_workers.diagnostics import status_values

        nominal = 51200 / SINC[rate]
        deadline = time.monotonic() + timeout
        self._heartbeats.clear()
        while time.monotonic() < deadline:
            messages, _ = self._heartbeats.snapshot()
            rates = [float(status_values(m).get('rate_hz', 0)) for m in messages[-10:]]
            if len(messages) >= 12 and all(abs(r - nominal) < 0.1 * nominal for r in rates):
                return
            time.sleep(0.05)
        raise TimeoutError('the F/T stream did not reach its nominal rate')

    def stop_ws_probe(self, probe) -> None:
        self.stop(probe)
        connections = len(re.findall('^probe ready', probe.output(), re.MULTILINE))
        if connections > 1:
            self.note(f'{probe.name} lost its connection and connected {connections} times')

    def start_ws_probe(self, rate: int, name: str):
        url = self.bridge_url.replace('http://', 'ws://') + '/ws/wrench'
        out = self.directory / f'ws_{rate}_{name}.npz'
        probe = self.start(f'ws_probe_{rate}_{name}', 'bench.ft_probe', 'ws', '--url', url,
                           '--out', str(out), '--max-seconds', '900', rt=PROBE_RT)
        probe.wait_for_output('^probe ready', timeout=30)
        return probe, out

    # Windows

    def measure(self, setup: str, rate: int, loaded: bool, pin: list[int] = ()) -> None:
        """Measure one window; `pin`: processes to keep off the F/T worker's CPU meanwhile."""
        load = None
        if loaded:
            self.camera_streaming(True)
            self.churn_flag.touch()
            load = self.procs.start_python(
                f'load_{setup}_{rate}', 'bench.load', '--url', self.bridge_url,
                '--seconds', f'{self.seconds + WARMUP_S + 1:.1f}', *self.load.args())
        others = set(range(os.cpu_count() - 1)) or {0}
        for pid in [*pin, *([load.pid] if pin and load else [])]:
            self.note(pin_threads(pid, others))
        time.sleep(WARMUP_S)
        start = time.time_ns()
        machine_before = psutil.cpu_times()
        bridge = psutil.Process(self.bridge_pid)
        bridge_before = sum(bridge.cpu_times()[:2])
        time.sleep(self.seconds)
        end = time.time_ns()
        machine_after = psutil.cpu_times()
        busy = 1.0 - ((machine_after.idle - machine_before.idle)
                      / max(1e-9, sum(machine_after) - sum(machine_before)))
        bridge_cpu = (sum(bridge.cpu_times()[:2]) - bridge_before) / ((end - start) / 1e9)
        self.windows.append(Window(setup, rate, start, end, round(100 * busy, 1),
                                   round(100 * bridge_cpu, 1), os.getloadavg()[0]))
        (self.directory / 'windows.json').write_text(json.dumps([asdict(w) for w in self.windows]))
        if load is not None:
            self.churn_flag.unlink(missing_ok=True)
            try:
                load.popen.wait(CLOSE_WAIT_S)
            except subprocess.TimeoutExpired:
                self.note(f'bench.load overran its time in {setup} at {rate} Hz; stopped')
            summary = re.search(r'^load: (.*)$', load.output(), re.MULTILINE)
            if summary:
                self.loads[(setup, rate)] = json.loads(summary.group(1))
            self.stop(load)
            self.camera_streaming(False)
        self.drain(end)
        for pid in pin:
            self.note(pin_threads(pid, set(range(os.cpu_count()))))

    def run_rate(self, rate: int, setups: list[str]) -> dict:
        link = self.directory / f'ft_{rate}'
        sim, epoch_ns, period_ns = self.start_sim(rate, link)
        ros_out = self.directory / f'ros_{rate}.npz'
        ros_probe = self.start(f'ros_probe_{rate}', 'bench.ft_probe', 'ros', '--out',
                               str(ros_out), '--max-seconds', '900', rt=PROBE_RT)
        ros_probe.wait_for_output('^probe ready', timeout=30)
        floor_link = link.with_name(f'floor_{rate}')
        floor_sim, floor_epoch, floor_period = self.start_sim(rate, floor_link,
                                                              name=f'sim_floor_{rate}')
        pty_out = self.directory / f'pty_{rate}.npz'
        pty_probe = self.start(f'pty_probe_{rate}', 'bench.ft_probe', 'pty', '--port',
                               str(floor_link), '--out', str(pty_out),
                               '--max-seconds', '900', rt=PROBE_RT)
        pty_probe.wait_for_output('^probe ready', timeout=30)
        main_stream = partial(Stream, epoch_ns=epoch_ns, period_ns=period_ns)
        self.streams = [main_stream(progress_path(ros_out)),
                        Stream(progress_path(pty_out), floor_epoch, floor_period)]
        ws_files = []
        own = [s for s in setups if s in ('a', 'b', 'b_tuned', 'b_core')]
        if own:
            bridge = self.start_bridge()
            ws_probe, ws_out = self.start_ws_probe(rate, 'own')
            ws_files.append(ws_out)
            self.streams.append(main_stream(progress_path(ws_out)))
            ft = None
            tuned = None
            for setup in own:
                if ft is None or tuned != (setup in ('b_tuned', 'b_core')):
                    if ft is not None:
                        self.stop(ft)
                    tuned = setup in ('b_tuned', 'b_core')
                    ft = self.start_ft(rate, link, tuned)
                    self.wait_streaming(rate)
                web = [bridge.pid] + ([self.camera.pid] if self.camera else [])
                web = web if setup == 'b_core' else []
                self.measure(setup, rate, loaded=setup != 'a', pin=web)
            self.stop(ft)
            self.stop_ws_probe(ws_probe)
            self.streams.pop()
            self.stop(bridge)
        for setup in [s for s in setups if s.startswith('c')]:
            rt_priority = WORKER_RT if setup == 'c_tuned' else 0
            bridge = self.start_bridge(embed=(link, rate, rt_priority))
            ws_probe, ws_out = self.start_ws_probe(rate, setup)
            ws_files.append(ws_out)
            self.streams.append(main_stream(progress_path(ws_out)))
            self.wait_streaming(rate)
            self.measure(setup, rate, loaded=setup != 'c_idle')
            self.stop_ws_probe(ws_probe)
            self.streams.pop()
            self.note(_gc_line(self.stop_and_read(bridge), setup, rate))
        self.stop(ros_probe)
        self.stop(sim)
        self.stop(pty_probe)
        self.stop(floor_sim)
        return {'epoch_ns': epoch_ns, 'period_ns': period_ns, 'ros': ros_out, 'ws': ws_files,
                'pty': (pty_out, floor_epoch, floor_period)}

    def drain(self, end_ns: int) -> None:
        """Wait until every probe has caught up with the window's end, DRAIN_S after it at most."""
        deadline = end_ns + int(DRAIN_S * 1e9)
        while time.time_ns() < deadline and not all(s.caught_up(end_ns) for s in self.streams):
            time.sleep(0.05)

    def stop_and_read(self, process) -> str:
        self.stop(process)
        return process.output()


def _gc_line(output: str, setup: str, rate: int) -> str | None:
    match = re.search(r'gc pauses: (.*)$', output, re.MULTILINE)
    return f'bridge GC during {setup} at {rate} Hz: {match.group(1)}' if match else None


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.exists():  # not "0 samples": the probe never saved what it received
        raise RuntimeError(f'{path.name} is missing: its probe did not save its records '
                           '(see its log in the run directory)')
    data = np.load(path)
    return data['arrival_ns'], data['counter']


def evaluate(run_data: dict, windows: list[Window]) -> list[dict]:
    rows = []
    for rate, data in run_data.items():
        ros = _load(data['ros'])
        ws_parts = [_load(path) for path in data['ws']]
        ws = (np.concatenate([p[0] for p in ws_parts]) if ws_parts else np.zeros(0, np.int64),
              np.concatenate([p[1] for p in ws_parts]) if ws_parts else np.zeros(0, np.int64))
        pty_path, pty_epoch, pty_period = data['pty']
        pty = _load(pty_path)
        for window in [w for w in windows if w.rate == rate]:
            for client, (arrival, counter), epoch, period, batch in (
                    ('ros', ros, data['epoch_ns'], data['period_ns'], None),
                    ('ws', ws, data['epoch_ns'], data['period_ns'], WRENCH_BATCH_MS * 1e6),
                    ('pty floor', pty, pty_epoch, pty_period, None)):
                result = analyse(arrival, counter, epoch, period, window.start_ns,
                                 window.end_ns, batch)
                rows.append({'setup': window.setup, 'rate': rate, 'client': client, **result,
                             'machine_busy': window.machine_busy,
                             'bridge_cpu': window.bridge_cpu, 'loadavg': window.loadavg})
    return rows


def add_ratios(rows: list[dict]) -> None:
    """Add latency and jitter p99 ratios against set-up a of the same rate and client."""
    base = {(r['rate'], r['client']): r for r in rows if r['setup'] == 'a'}
    for row in rows:
        ref = base.get((row['rate'], row['client']))
        for metric in ('latency_ms', 'jitter_ms'):
            value = row[metric]['p99']
            ref_value = ref[metric]['p99'] if ref else float('nan')
            row[f'{metric[:-3]}_p99_ratio'] = (value / ref_value if ref_value and ref_value > 0
                                               else float('nan'))


nan = float('nan')


def table(rows: list[dict]) -> str:
    """Return the rows as a markdown table."""
    lines = ['| rate | set-up | client | latency p50 / p99 / p99.9 / max ms | p99 vs a '
             '| jitter p50 / p99 / p99.9 / max ms | jitter p99 vs a | lost / expected '
             '| CPUs busy, bridge CPU, load avg |',
             '|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        lat, jit = r['latency_ms'], r['jitter_ms']
        lines.append(
            f'| {r["rate"]} Hz | {r["setup"]}: {DESCRIPTION[r["setup"]]} | {r["client"]} '
            f'| {lat["p50"]:.2f} / {lat["p99"]:.2f} / {lat["p999"]:.2f} / {lat["max"]:.1f} '
            f'| {r["latency_p99_ratio"]:.2f}x '
            f'| {jit["p50"]:.2f} / {jit["p99"]:.2f} / {jit["p999"]:.2f} / {jit["max"]:.1f} '
            f'| {r["jitter_p99_ratio"]:.2f}x | {r["lost"]} / {r["expected"]} '
            f'| {r.get("machine_busy", nan):.0f}%, {r.get("bridge_cpu", nan):.0f}%, '
            f'{r.get("loadavg", nan):.1f} |')
    return '\n'.join(lines)


def plot_cdfs(rows: list[dict], directory: Path) -> list[Path]:
    """One PNG per rate: latency CDFs per set-up, ROS and websocket side by side."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    paths = []
    for rate in sorted({r['rate'] for r in rows}):
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for ax, client in zip(axes, ('ros', 'ws'), strict=True):
            for r in [r for r in rows if r['rate'] == rate and r['client'] == client]:
                values = np.sort(r['latencies'])
                if len(values) == 0:
                    continue
                tail = 1.0 - np.arange(len(values)) / len(values)
                ax.step(values, tail, where='post',
                        label=f'{r["setup"]}: {DESCRIPTION[r["setup"]]}')
            ax.set_xscale('log')
            ax.set_yscale('log')
            ax.set_xlabel('sample latency (arrival - due) [ms]')
            ax.set_ylabel('fraction of samples later than x')
            where = 'ROS subscriber' if client == 'ros' else 'websocket client'
            ax.set_title(f'F/T {rate} Hz at a {where}')
            ax.grid(True, which='both', alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        path = directory / f'isolation_cdf_{rate}hz.png'
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def run(seconds: float, rates: list[int], setups: list[str], load: Load, rt: bool,
        camera_size: tuple[int, int] | None, keep: Path | None = None
        ) -> tuple[list[dict], list[str], dict]:
    """Measure every set-up at every rate; return the rows, notes and load summaries.

    `keep`: a directory for the logs and raw records (else a temporary one).
    """
    with tempfile.TemporaryDirectory(prefix='isolation_') as tmp:
        directory = keep or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        bench = Run(directory, seconds, load, rt, camera_size)
        try:
            if camera_size is not None and any(s not in ('a', 'c_idle') for s in setups):
                bench.start_camera()
                bench.camera_streaming(False)
            run_data = {rate: bench.run_rate(rate, setups) for rate in rates}
        except (TimeoutError, RuntimeError) as error:
            tails = '\n'.join(f'--- {p.name}\n{p.tail(15)}' for p in bench.procs.processes)
            raise RuntimeError(f'isolation bench failed: {error}\n{tails}') from error
        finally:
            bench.close()
        rows = evaluate(run_data, bench.windows)
    add_ratios(rows)
    return rows, bench.notes, {f'{s} {r} Hz': v for (s, r), v in bench.loads.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=float, default=15.0, help='measurement per set-up')
    parser.add_argument('--rates', default='800,1000', help='comma-separated: 800, 1000')
    parser.add_argument('--setups', default=','.join(DEFAULT_SETUPS),
                        help=f'comma-separated, from {", ".join(SETUPS)}')
    parser.add_argument('--tiny', action='store_true',
                        help='no camera and few clients (smoke test)')
    parser.add_argument('--no-rt', action='store_true',
                        help='no SCHED_FIFO for the simulator and the measuring clients')
    parser.add_argument('--out', type=Path, help='write results.json and CDF plots here')
    parser.add_argument('--keep', type=Path,
                        help='keep process logs and raw records (.npz) in this directory')
    args = parser.parse_args(argv)
    rates = [int(r) for r in args.rates.split(',')]
    setups = args.setups.split(',')
    for rate in rates:
        if rate not in SINC:
            parser.error(f'rate {rate} not one of {", ".join(map(str, SINC))}')
    for setup in setups:
        if setup not in SETUPS:
            parser.error(f'set-up {setup} not one of {", ".join(SETUPS)}')
    load = TINY_LOAD if args.tiny else Load()
    camera_size = None if args.tiny else CAMERA_SIZE
    rows, notes, loads = run(args.seconds, rates, setups, load, not args.no_rt, camera_size,
                             args.keep)
    camera = f'{camera_size[0]}x{camera_size[1]} Mono8 30 fps' if camera_size else 'off'
    print(f'isolation: {args.seconds:g} s per set-up, camera {camera}, '
          f'load {asdict(load)}, {os.cpu_count()} CPUs, '
          f'load average {os.getloadavg()[0]:.1f}')
    print(table(rows))
    for text in notes:
        print(f'note: {text}')
    for name, summary in loads.items():
        print(f'load {name}: {json.dumps(summary)}')
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        plot_cdfs(rows, args.out)
        results = {'seconds': args.seconds, 'load': asdict(load), 'camera': camera_size,
                   'notes': notes, 'loads': loads,
                   'rows': [{k: v for k, v in r.items() if k != 'latencies'} for r in rows]}
        (args.out / 'isolation.json').write_text(json.dumps(results, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
