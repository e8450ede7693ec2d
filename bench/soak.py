"""Soak: the whole system for N minutes with clients coming and going and workers killed.

`sensor-workers up` (manager -> camera and F/T workers, bridge) runs on the emulated camera and a
simulated Bota sensor (started here, at SCHED_FIFO like hardware, so its schedule is known).
Meanwhile bench.load connects and drops web clients (wrench, raw/JPEG images, events, a client
that never reads, HTTP) and changes the camera's exposure through the bridge every few seconds;
a random worker is SIGKILLed every `--kill-every` seconds (randomized +-50%), and each kill must
be healed (the manager reports the device active again with a new pid). Reported:
- RSS of every process over time, per role (cli, manager, camera, ft, standbys, bridge, ...):
  median of the first minute after warm-up vs the last one; growth must stay under 5%;
- F/T samples lost at a ROS subscriber outside the windows around F/T kills (must be 0);
- kills, healed kills and heal times.
Writes soak.md and soak_rss.png into bench/results/<date>/ (or --out).

    python -m bench.soak --minutes 10
"""

import argparse
import datetime
import json
import os
from pathlib import Path
import random
import re
import statistics
import sys
import time

import numpy as np
import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
RSS_PERIOD_S = 2.0
HEAL_TIMEOUT_S = 30.0
GROWTH_LIMIT = 0.05
# Around an F/T kill, samples are not expected: from just before the kill until the new
# process has delivered for a moment.
KILL_MARGIN_BEFORE_NS = 100_000_000
KILL_MARGIN_AFTER_NS = 500_000_000
FT_SINC = 51


def role(process: psutil.Process) -> str:
    """Return a stable name for a process of the system, whatever its pid.

    A worker's warm standby becomes the worker after a kill, so both count as the device.
    """
    try:
        cmd = ' '.join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 'gone'
    node = re.search(r'__node:=(\w+)', cmd)
    if 'sensor_workers.standby' in cmd and node:
        return f'{node.group(1)} (+standby)'
    for pattern, name in (('sensor_workers.cli', 'cli'), ('manager.node', 'manager'),
                          ('sensor_workers.bridge', 'bridge'),
                          ('camera.node', 'camera (+standby)'), ('ft.node', 'ft (+standby)'),
                          ('ft.sim', 'sim'), ('bench.load', 'load'), ('bench.ft_probe', 'probe')):
        if pattern in cmd:
            return name
    return process.name()


def sample_rss(root_pids: list[int]) -> dict[int, tuple[str, int]]:
    """Role and RSS in bytes of the given processes and all their descendants, by pid."""
    rss: dict[int, tuple[str, int]] = {}
    for pid in root_pids:
        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for process in tree:
            try:
                rss[process.pid] = (role(process), process.memory_info().rss)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
    return rss


Series = list[tuple[float, dict[int, tuple[str, int]]]]


def growth(series: Series, warmup_s: float, window_s: float,
           restarted: set[str] = frozenset()) -> dict[str, dict]:
    """RSS growth per role, judged for roles served by one process from warm-up to the end.

    Such a process: median RSS in the first window after warm-up vs the last window. A role
    served by several processes over time (workers and their standbys, replaced after kills)
    is not comparable that way; the peak RSS of its first and of its last process is reported
    instead, not judged; so is a worker role whose device was restarted (`restarted`: device
    names), since its standby process changes role from spare to worker.
    """
    if not series:
        return {}
    t_end = series[-1][0]
    first = [s for t, s in series if warmup_s <= t < warmup_s + window_s]
    last = [s for t, s in series if t >= t_end - window_s]
    # Peak RSS per process, by role, in order of appearance.
    instances: dict[str, dict[int, int]] = {}
    for t, sample in series:
        for pid, (name, value) in sample.items():
            if t >= warmup_s or name in instances:
                peaks = instances.setdefault(name, {})
                peaks[pid] = max(peaks.get(pid, 0), value)
    result: dict[str, dict] = {}
    for name, peaks in sorted(instances.items()):
        if len(peaks) > 1:
            ordered = list(peaks.values())
            result[name] = {'start_mb': ordered[0] / 1e6, 'end_mb': ordered[-1] / 1e6,
                            'growth': (ordered[-1] - ordered[0]) / ordered[0],
                            'judged': False, 'instances': len(peaks)}
            continue
        pid = next(iter(peaks))
        if name.split()[0] in restarted:
            result[name] = {'start_mb': peaks[pid] / 1e6, 'end_mb': peaks[pid] / 1e6,
                            'growth': 0.0, 'judged': False, 'instances': 1}
            continue
        a = [s[pid][1] for s in first if pid in s]
        b = [s[pid][1] for s in last if pid in s]
        if a and b:
            start, end = statistics.median(a), statistics.median(b)
            result[name] = {'start_mb': start / 1e6, 'end_mb': end / 1e6,
                            'growth': (end - start) / start if start else 0.0, 'judged': True}
    return result


def lost_outside_kills(arrival_ns: np.ndarray, counter_mod: np.ndarray, epoch_ns: int,
                       period_ns: float, start_ns: int, end_ns: int,
                       excluded: list[tuple[int, int]]) -> dict[str, int]:
    """Count samples due in [start, end) outside the excluded windows that never arrived."""
    from bench.isolation import unwrap_counters

    counters = np.unique(unwrap_counters(counter_mod, arrival_ns, epoch_ns, period_ns))
    all_counters = np.arange(int(np.ceil((start_ns - epoch_ns) / period_ns)),
                             int(np.ceil((end_ns - epoch_ns) / period_ns)))
    due = epoch_ns + all_counters * period_ns
    keep = np.ones(len(all_counters), dtype=bool)
    for low, high in excluded:
        keep &= ~((due >= low) & (due < high))
    expected = all_counters[keep]
    missing = np.setdiff1d(expected, counters, assume_unique=True)
    # Where the losses are: runs of consecutive missing samples (start s after start_ns, n).
    runs = []
    if len(missing):
        breaks = np.flatnonzero(np.diff(missing) != 1) + 1
        for run in np.split(missing, breaks):
            runs.append(((epoch_ns + run[0] * period_ns - start_ns) / 1e9, int(len(run))))
    runs.sort(key=lambda r: -r[1])
    return {'expected': int(len(expected)), 'lost': int(len(missing)),
            'excluded': int((~keep).sum()), 'largest_gaps': runs[:5]}


class Soak:
    def __init__(self, directory: Path, minutes: float, kill_every: float, seed: int,
                 tuned: bool = False, standby: bool = True) -> None:
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

        from sensor_workers import paths, qos
        from sensor_workers.testing.processes import ProcessGroup
        from sensor_workers.testing.ros_env import apply_isolated_ros_environment
        from sensor_workers.testing.ros_probe import RosProbe

        self.env = apply_isolated_ros_environment()
        pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get('PYTHONPATH')]))
        self.procs = ProcessGroup(directory, {**self.env, 'PYTHONPATH': pythonpath})
        self.directory = directory
        self.duration_s = minutes * 60.0
        self.kill_every = kill_every
        self.rng = random.Random(seed)
        self.control = RosProbe('soak_control')
        self.states = self.control.collect(DiagnosticArray, '/manager/device_states',
                                           qos.LATCHED)
        self.events = self.control.collect(DiagnosticStatus, '/safety/worker_events',
                                           qos.LATCHED_EVENTS)
        self.config = yaml.safe_load(paths.config_file('sim.yaml').read_text())
        self.kills: list[dict] = []
        self.tuned = tuned
        self.config['manager']['ros__parameters']['warm_standby'] = standby
        self.rss: Series = []
        self.note: str | None = None

    def close(self) -> None:
        self.control.close()
        for process in reversed(self.procs.processes):
            # The CLI needs the manager's stop timeout to end the workers in order.
            process.stop(timeout=15.0)
        self.procs.processes.clear()

    def device(self, name: str) -> dict[str, str]:
        from sensor_workers.diagnostics import latest_status, status_values

        status = latest_status(self.states.snapshot()[0], name)
        return {} if status is None else {'message': status.message, **status_values(status)}

    def wait_active(self, name: str, not_pid: str, timeout: float) -> str | None:
        """Wait until `name` is active with a pid other than `not_pid`; return the pid."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.device(name)
            if state.get('state', state.get('message')) == 'active' and \
                    state.get('pid') not in (None, '', not_pid):
                return state['pid']
            time.sleep(0.05)
        return None

    def start(self) -> tuple:
        from bench.isolation import SIM_RT, realtime

        link = self.directory / 'ft_port'
        sim = self.procs.start_python('sim', 'sensor_workers.ft.sim', '--sinc', str(FT_SINC),
                                      '--link', str(link))
        self.note = realtime(sim.pid, SIM_RT)
        match = sim.wait_for_output(r'^epoch_ns: (\d+) counter: (\d+) period_ns: ([\d.]+)',
                                    timeout=30)
        epoch_ns, period_ns = int(match.group(1)), float(match.group(3))
        port = _free_port()
        self.config['ft']['ros__parameters'].update(port=str(link), sinc_length=FT_SINC)
        self.config['bridge']['ros__parameters'].update(port=port, max_clients=64)
        if self.tuned:
            # The manager's per-worker settings, and the worker's own for its read loop.
            from bench.isolation import WORKER_RT

            manager = self.config['manager']['ros__parameters']
            manager.setdefault('ft', {}).update(rt_priority=WORKER_RT,
                                                cpu_affinity=[os.cpu_count() - 1])
            self.config['ft']['ros__parameters']['rt_priority'] = WORKER_RT
        config = self.directory / 'soak.yaml'
        config.write_text(yaml.safe_dump(self.config))
        probe_out = self.directory / 'ros.npz'
        probe = self.procs.start_python('probe', 'bench.ft_probe', 'ros', '--out',
                                        str(probe_out), '--max-seconds',
                                        str(self.duration_s + 300))
        probe.wait_for_output('^probe ready', timeout=30)
        cli = self.procs.start_python('cli', 'sensor_workers.cli', 'up', '--config', str(config))
        for name in ('camera', 'ft'):
            if self.wait_active(name, '', 120) is None:
                raise TimeoutError(f'{name} did not become active:\n{cli.tail(30)}')
        return sim, probe, probe_out, cli, port, epoch_ns, period_ns

    def run(self) -> dict:
        sim, probe, probe_out, cli, port, epoch_ns, period_ns = self.start()
        started = time.monotonic()
        start_ns = time.time_ns()
        load = self.procs.start_python(
            'load', 'bench.load', '--url', f'http://127.0.0.1:{port}',
            '--seconds', f'{self.duration_s:.0f}', '--wrench', '4', '--image-raw', '2',
            '--image-jpeg', '2', '--events', '2', '--stalled', '1', '--http', '2',
            '--reconnect-s', '8', '--param-every', '3')
        next_kill = started + self._interval()
        next_rss = started
        while (now := time.monotonic()) < started + self.duration_s:
            if now >= next_rss:
                self.rss.append((now - started, sample_rss([cli.pid, sim.pid, probe.pid,
                                                            load.pid])))
                next_rss += RSS_PERIOD_S
            quiet_tail = min(HEAL_TIMEOUT_S / 3, 0.3 * self.duration_s)  # no kill at the end
            if now >= next_kill and now < started + self.duration_s - quiet_tail:
                self.kill(self.rng.choice(['camera', 'ft']))
                next_kill = time.monotonic() + self._interval()
            time.sleep(0.05)
        end_ns = time.time_ns()
        load.popen.wait(30)
        load_summary = re.search(r'^load: (.*)$', load.output(), re.MULTILINE)
        probe.stop()
        data = np.load(probe_out)
        from bench.isolation import unwrap_counters

        due = epoch_ns + unwrap_counters(data['counter'], data['arrival_ns'], epoch_ns,
                                         period_ns) * period_ns
        excluded = [(k['kill_ns'] - KILL_MARGIN_BEFORE_NS,
                     _back(due, k['kill_ns']) + KILL_MARGIN_AFTER_NS)
                    for k in self.kills if k['device'] == 'ft']
        warmup_s = min(60.0, 0.25 * self.duration_s)
        lost = lost_outside_kills(data['arrival_ns'], data['counter'], epoch_ns, period_ns,
                                  start_ns + int(warmup_s * 1e9), end_ns - 1_000_000_000,
                                  excluded)
        return {
            'duration_s': self.duration_s, 'warmup_s': warmup_s, 'kills': self.kills,
            'events': self.event_counts(),
            'lost': lost,
            'rss': growth(self.rss, warmup_s,
                          max(2.5 * RSS_PERIOD_S, min(60.0, 0.2 * self.duration_s)),
                          {k.split()[0] for k in self.event_counts() if 'restarting' in k}),
            'load': json.loads(load_summary.group(1)) if load_summary else None,
            'rt_note': self.note, 'tuned': self.tuned,
        }

    def event_counts(self) -> dict[str, int]:
        """Count the manager's safety events per device and kind ('ft exited': 3, ...)."""
        from sensor_workers.diagnostics import status_values

        counts: dict[str, int] = {}
        messages, _ = self.events.snapshot()
        for message in messages:
            key = f'{message.name} {status_values(message).get("event", "?")}'
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items()))

    def _interval(self) -> float:
        return self.kill_every * self.rng.uniform(0.5, 1.5)

    def kill(self, name: str) -> None:
        state = self.device(name)
        pid = state.get('pid', '')
        if state.get('state') != 'active' or not pid.isdigit():
            return  # still recovering from the previous kill
        kill_ns = time.time_ns()
        try:
            os.kill(int(pid), 9)
        except ProcessLookupError:
            return
        new_pid = self.wait_active(name, pid, HEAL_TIMEOUT_S)
        self.kills.append({'device': name, 'pid': pid, 'kill_ns': kill_ns,
                           'healed': new_pid is not None,
                           'heal_s': (time.time_ns() - kill_ns) / 1e9 if new_pid else None})


def _back(due_ns: np.ndarray, kill_ns: int) -> int:
    """Return the due time of the first sample the new F/T process delivered after a kill.

    Samples due after the kill can only have been read by the new process.
    """
    later = due_ns[due_ns > kill_ns + 50_000_000]
    return int(later.min()) if len(later) else kill_ns + int(HEAL_TIMEOUT_S * 1e9)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def plot_rss(series: Series, path: Path, warmup_s: float) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 5))
    roles = sorted({name for _, s in series for name, _ in s.values()})
    colors = {name: f'C{i % 10}' for i, name in enumerate(roles)}
    labelled = set()
    for pid in sorted({pid for _, s in series for pid in s}):
        points = [(t / 60, s[pid][1] / 1e6) for t, s in series if pid in s]
        name = next(s[pid][0] for _, s in series if pid in s)
        ax.plot(*zip(*points, strict=True), color=colors[name], linewidth=1,
                label=None if name in labelled else name)
        labelled.add(name)
    ax.axvline(warmup_s / 60, color='grey', linestyle='--', linewidth=1)
    ax.set_xlabel('minutes')
    ax.set_ylabel('RSS [MB]')
    ax.set_title('soak: RSS of every process (one line per process; dashed: end of warm-up)')
    ax.legend(fontsize=7, ncol=3)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(result: dict) -> tuple[str, bool]:
    kills = result['kills']
    healed = [k for k in kills if k['healed']]
    heal = sorted(k['heal_s'] for k in healed)
    lost = result['lost']
    settings = ('F/T worker tuned: manager ft.rt_priority 50, ft.cpu_affinity [last CPU], ft '
                'rt_priority 50' if result['tuned'] else 'shipped config/sim.yaml settings')
    lines = [f'# Soak: {result["duration_s"] / 60:.1f} min, warm-up {result["warmup_s"]:.0f} s, '
             f'{settings}',
             '', '| process | RSS after warm-up MB | RSS at the end MB | growth |',
             '|---|---|---|---|']
    too_much = []
    for name, r in result['rss'].items():
        if r['judged']:
            lines.append(f'| {name} | {r["start_mb"]:.1f} | {r["end_mb"]:.1f} '
                         f'| {100 * r["growth"]:+.1f}% |')
        else:
            lines.append(f'| {name}: {r["instances"]} processes (kills), peak of the first / '
                         f'last | {r["start_mb"]:.1f} | {r["end_mb"]:.1f} '
                         f'| {100 * r["growth"]:+.1f}% (not judged) |')
        if r['judged'] and r['growth'] > GROWTH_LIMIT and name not in ('load', 'probe'):
            too_much.append(name)
    by_device = {d: sum(1 for k in kills if k['device'] == d) for d in ('camera', 'ft')}
    lines += [
        '',
        f'- kills: {len(kills)} ({", ".join(f"{d} {n}" for d, n in by_device.items())}), '
        f'healed: {len(healed)}; heal time (kill -> active with a new pid) '
        + (f'p50 {heal[len(heal) // 2]:.2f} s, max {heal[-1]:.2f} s' if heal else 'n/a'),
        f'- F/T samples lost at a ROS subscriber outside F/T kill windows: {lost["lost"]} of '
        f'{lost["expected"]} ({lost["excluded"]} samples inside kill windows not counted); '
        'largest gaps (s after warm-up, samples): '
        + (', '.join(f'{t:.1f} s: {n}' for t, n in lost['largest_gaps']) or 'none'),
        f'- RSS growth over {100 * GROWTH_LIMIT:.0f}% (system processes): '
        f'{", ".join(too_much) or "none"}',
        f'- manager events: `{json.dumps(result["events"])}` (exited/restarted beyond the '
        'kills above are restarts the manager decided itself, e.g. missed heartbeats)',
        f'- web load: `{json.dumps(result["load"])}`',
    ]
    if result.get('rt_note'):
        lines.append(f'- note: {result["rt_note"]}')
    ok = len(healed) == len(kills) and lost['lost'] == 0 and not too_much
    lines += ['', f'Result: {"PASS" if ok else "FAIL"}']
    return '\n'.join(lines), ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--minutes', type=float, default=10.0)
    parser.add_argument('--seconds', type=float, help='duration in seconds (overrides minutes)')
    parser.add_argument('--kill-every', type=float, default=20.0,
                        help='mean seconds between two kills')
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--no-standby', action='store_true',
                        help='manager parameter warm_standby: false (restart from scratch)')
    parser.add_argument('--tuned', action='store_true',
                        help="F/T worker with the manager's cpu_affinity/rt_priority settings")
    parser.add_argument('--out', type=Path, help='default: bench/results/<date>')
    parser.add_argument('--keep', type=Path, default=None,
                        help='write the process logs (cli, manager, workers, bridge) here')
    args = parser.parse_args(argv)
    minutes = args.seconds / 60.0 if args.seconds is not None else args.minutes
    if not 0 < minutes <= 24 * 60:
        parser.error('the soak runs between 0 and 24 h')
    today = datetime.datetime.now(datetime.UTC)
    out = args.out or REPO / 'bench' / 'results' / f'{today:%Y-%m-%d}'
    out.mkdir(parents=True, exist_ok=True)
    from sensor_workers.testing.processes import log_directory

    with log_directory(args.keep, 'soak_') as directory:
        soak = Soak(directory, minutes, args.kill_every, args.seed, args.tuned,
                    not args.no_standby)
        try:
            result = soak.run()
        except (TimeoutError, RuntimeError) as error:
            print(f'soak failed: {error}', file=sys.stderr)
            return 1
        finally:
            soak.close()
    text, ok = report(result)
    name = 'soak_tuned' if args.tuned else 'soak'
    plot_rss(soak.rss, out / f'{name}_rss.png', result['warmup_s'])
    (out / f'{name}.md').write_text(text + f'\n\n![RSS over time]({name}_rss.png)\n')
    print(text)
    print(f'\nreport: {out / name}.md')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
