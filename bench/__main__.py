"""`make bench`: the whole benchmark suite, a markdown table, a report and plots.

Runs, each bounded in time (about 10 minutes together on 2 cores):
- bench.isolation: the F/T stream idle, under a saturated bridge, and as a thread inside it;
- bench.ft_latency, bench.camera_throughput, bench.bridge_fanout (when present) and
  bench.recovery, by calling their `main()`; their tables are kept verbatim in the report and
  their headline figures are turned into ratios against their own baselines.
Writes bench/results/<date>/report.md, isolation_cdf_*.png and recovery_timeline.png.

    python -m bench [--seconds 15] [--only isolation,recovery] [--out DIR]
"""

import argparse
from collections.abc import Callable
import contextlib
import datetime
import importlib
import importlib.util
import io
import json
import os
from pathlib import Path
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback

REPO = Path(__file__).resolve().parents[1]
COMPONENTS = ('isolation', 'ft_latency', 'camera_throughput', 'bridge_fanout', 'recovery')


class Tee(io.TextIOBase):
    """Write to the terminal and keep a copy."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.copy = io.StringIO()

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.stream.flush()
        return self.copy.write(text)


def call(name: str, argv: list[str], before: Callable[[], None] | None = None) -> dict:
    """Run bench.<name>.main(argv) in this process; keep its output, time and outcome."""
    print(f'\n## bench.{name} {" ".join(argv)}', flush=True)
    started = time.monotonic()
    tee = Tee(sys.stdout)
    outcome = {'name': name, 'argv': argv}
    try:
        module = importlib.import_module(f'bench.{name}')
        if before is not None:
            before()
        with contextlib.redirect_stdout(tee):
            code = module.main(argv)
        outcome['ok'] = code in (0, None)
        if not outcome['ok']:
            outcome['error'] = f'exit code {code}'
    except Exception as error:  # noqa: BLE001 one failing benchmark must not stop the suite
        outcome['ok'] = False
        outcome['error'] = f'{type(error).__name__}: {error}'
        traceback.print_exc()
    outcome['output'] = tee.copy.getvalue()
    outcome['seconds'] = time.monotonic() - started
    return outcome


# Headline figures of the component benchmarks, read from their printed tables

def ft_latency_figures(output: str) -> list[dict]:
    figures = []
    for match in re.finditer(r'^(\S+ \S+) ft_node\+DDS\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)'
                             r'\s+(\d+)\s+([\d.na]+)', output, re.MULTILINE):
        rate, _, p50, p99, _, lost, ratio = match.groups()
        figures.append({'figure': f'F/T latency {rate}, ft_node+DDS p99 vs raw pty read p99',
                        'value': f'{float(p99):.3f} ms, lost {lost}', 'ratio': float(ratio),
                        'target': '-'})
    return figures


def camera_figures(output: str) -> list[dict]:
    figures = []
    for line in output.splitlines():
        fields = line.split()
        if len(fields) == 18 and re.fullmatch(r'\d+x\d+', fields[0]):
            size, recv_fps, drops, p99 = fields[0], fields[2], fields[5], fields[7]
            memcpy, p99_ratio = fields[10], fields[12]
            shm_drops, shm_p99 = fields[14], fields[16]
            figures.append({'figure': f'camera {size} at 30 fps: grab->subscriber p99 vs '
                                      'one memcpy of the frame',
                            'value': f'{float(p99):.1f} ms ({recv_fps} fps, {drops} dropped, '
                                     f'memcpy {memcpy} ms); side channel {float(shm_p99):.1f} '
                                     f'ms, {shm_drops} dropped',
                            'ratio': float(p99_ratio), 'target': '-'})
    return figures


def recovery_figures(output: str) -> list[dict]:
    figures = []
    for match in re.finditer(r'^(camera|ft)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)'
                             r'\s+(\d+)', output, re.MULTILINE):
        device, kills, d50, d99, _, b50, b99, bmax = match.groups()
        figures.append({'figure': f'recovery {device}: kill -9 -> first new message p99 vs '
                                  'the 1 s budget',
                        'value': f'{b99} ms (p50 {b50}, max {bmax}; detection p99 {d99} ms; '
                                 f'{kills} kills)',
                        'ratio': int(b99) / 1000.0, 'target': '<= 1'})
    return figures


FANOUT_ROW = re.compile(
    r'^(bridge|foxglove)\s+(\d+)\s+([\d.]+)-([\d.]+)\s+(\d+)-(\d+)\s+(\d+)\s+(\S+)\s+(\S+)'
    r'\s+(\S+)\s+(\S+)\s+(\S+)', re.MULTILINE)


def fanout_figures(output: str) -> list[dict]:
    """Our bridge against the foxglove-sdk relay, per client count (bench.bridge_fanout)."""
    rows: dict[tuple[str, int], dict] = {}
    for m in FANOUT_ROW.finditer(output):
        rows[(m.group(1), int(m.group(2)))] = {
            'fps_min': float(m.group(3)), 'lost': int(m.group(7)), 'p99': float(m.group(9)),
            'cpu_s_per_mb': float(m.group(12))}
    figures = []
    for (kind, clients), ours in sorted(rows.items()):
        theirs = rows.get(('foxglove', clients))
        if kind != 'bridge' or theirs is None:
            continue
        for key, label in (('p99', 'wrench latency p99'), ('cpu_s_per_mb', 'CPU s per MB')):
            ratio = ours[key] / theirs[key] if theirs[key] else float('nan')
            figures.append({
                'figure': f'bridge fan-out, {clients} client(s): {label}, ours vs foxglove-sdk',
                'value': f'{ours[key]:g} vs {theirs[key]:g}; lost {ours["lost"]} vs '
                         f'{theirs["lost"]}; image fps min {ours["fps_min"]:g} vs '
                         f'{theirs["fps_min"]:g}',
                'ratio': ratio, 'target': '-'})
    return figures


def isolation_figures(results: dict) -> list[dict]:
    figures = []
    rows = results['rows']
    floor = {(r['rate'], r['setup']): r for r in rows if r['client'] == 'pty floor'}
    for row in rows:
        if row['setup'] == 'a' or row['client'] == 'pty floor':
            continue
        target = '-'
        if row['setup'] in ('b', 'b_tuned', 'b_core') and row['client'] == 'ros':
            target = '<= 1.5, 0 lost'
        ref = floor.get((row['rate'], row['setup']))
        context = (f'; OS pty floor p99 {ref["latency_ms"]["p99"]:.1f} ms, CPUs '
                   f'{row.get("machine_busy", float("nan")):.0f}% busy' if ref else '')
        figures.append({
            'figure': f'isolation {row["rate"]} Hz {row["setup"]} vs a, {row["client"]}: '
                      'latency p99',
            'value': f'{row["latency_ms"]["p99"]:.2f} ms, lost {row["lost"]}{context}',
            'ratio': row['latency_p99_ratio'], 'target': target})
    return figures


def isolation_reading(results: dict) -> list[str]:
    """Plain statements comparing the set-ups (ROS subscriber, latency p99) per rate."""
    lines = []
    rows = {(r['rate'], r['setup'], r['client']): r for r in results['rows']}
    for rate in sorted({r['rate'] for r in results['rows']}):
        def p99(setup: str, client: str = 'ros', rate=rate) -> float:
            row = rows.get((rate, setup, client))
            return row['latency_ms']['p99'] if row else float('nan')

        def lost(setup: str, rate=rate) -> str:
            row = rows.get((rate, setup, 'ros'))
            return str(row['lost']) if row else '?'

        parts = []
        if (rate, 'b', 'ros') in rows and (rate, 'c', 'ros') in rows:
            ratio = p99('c') / p99('b')
            parts.append(f'c/b = {ratio:.1f} (p99 {p99("c"):.1f} vs {p99("b"):.1f} ms, lost '
                         f'{lost("c")} vs {lost("b")})' + (
                             '; c is NOT far worse than b: with every CPU busy, a worker of '
                             'normal priority waits for a CPU in its own process as much as '
                             'behind the GIL, see the pty floor' if ratio < 2 else ''))
        if (rate, 'b_tuned', 'ros') in rows and (rate, 'c_tuned', 'ros') in rows:
            ratio = p99('c_tuned') / p99('b_tuned')
            parts.append(f'with SCHED_FIFO, c_tuned/b_tuned = {ratio:.1f}' + (
                ' (a realtime thread still waits for the GIL and GC inside the bridge)'
                if ratio > 1.5 else ' (not worse: the machine, not the GIL, set the pace)'))
        if (rate, 'b', 'ros') in rows and (rate, 'b_tuned', 'ros') in rows:
            parts.append(f'b_tuned/b = {p99("b_tuned") / p99("b"):.2f} (manager settings on '
                         'vs off)')
        floor = [f'{setup} {p99(setup, "pty floor"):.1f} ms' for setup in
                 ('a', 'b', 'b_tuned', 'b_core', 'c', 'c_tuned') if (rate, setup, 'ros') in rows]
        parts.append('OS pty floor p99: ' + ', '.join(floor))
        lines.append(f'- {rate} Hz: ' + '; '.join(parts) + '.')
    return lines


def summary_table(figures: list[dict]) -> str:
    lines = ['| figure | value | ratio | target |', '|---|---|---|---|']
    for f in figures:
        lines.append(f'| {f["figure"]} | {f["value"]} | {f["ratio"]:.2f} | {f["target"]} |')
    return '\n'.join(lines)


def git_commit() -> str:
    try:
        return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO, text=True,
                              capture_output=True, timeout=10, check=False).stdout.strip()
    except OSError:
        return 'unknown'


def run_recovery(kills: int, seconds: float, out_dir: Path, log_dir: Path) -> dict:
    """bench.recovery's main, watched by bench.recovery_timeline in the same ROS domain."""
    from sensor_workers.testing.processes import ProcessGroup

    recovery = importlib.import_module('bench.recovery')
    timeline_file = log_dir / 'timeline.json'
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get('PYTHONPATH')]))
    group = ProcessGroup(log_dir, {**recovery.ENV, 'PYTHONPATH': pythonpath})
    observer = None

    def start_observer() -> None:
        nonlocal observer
        observer = group.start_python('recovery_timeline', 'bench.recovery_timeline', '--out',
                                      str(timeline_file), '--max-seconds', str(seconds + 300))
        observer.wait_for_output('^observer ready', timeout=30)

    try:
        outcome = call('recovery', ['--kills', str(kills), '--seconds', str(seconds)],
                       before=start_observer)
    finally:
        group.stop_all()
    if timeline_file.exists():
        from bench.recovery_timeline import plot

        path = plot(json.loads(timeline_file.read_text()), out_dir / 'recovery_timeline.png',
                    'kill -9 of each worker under the manager (bench.recovery)')
        outcome['plot'] = path.name if path else None
    return outcome


def write_report(out_dir: Path, started: datetime.datetime, args: argparse.Namespace,
                 outcomes: list[dict], figures: list[dict], isolation: dict | None,
                 load_before: float, leftovers: list[str]) -> Path:
    lines = [
        f'# sensor_workers benchmark report, {started:%Y-%m-%d %H:%M} UTC',
        '',
        f'Commit {git_commit()}, {platform.node()}, {os.cpu_count()} CPUs, Python '
        f'{platform.python_version()}. Load average before: {load_before:.1f}, after: '
        f'{os.getloadavg()[0]:.1f}. A load average well above the CPU count means other work '
        'shared the machine: absolute figures are then noisy; the ratios compare set-ups '
        'measured in the same run.',
        '',
        '## Summary',
        '',
        summary_table(figures),
        '',
    ]
    if isolation is not None:
        lines += [
            '## Isolation (bench.isolation)',
            '',
            'Sample latency = arrival at the client - time the simulator was due to write the '
            'sample; jitter = |inter-arrival - period| (websocket: between batches, against '
            f'the {20} ms batch period); lost = samples due in the window never received. '
            f'{isolation["seconds"]:g} s per set-up; load: {json.dumps(isolation["load"])}, '
            f'camera {"x".join(map(str, isolation["camera"] or ["off"]))} (Mono8, 30 fps).',
            '',
            _isolation_table(isolation),
            '',
            'Reading (ROS subscriber, latency p99):',
            '',
            *isolation_reading(isolation),
            '',
        ]
        lines += [f'- {note}' for note in isolation['notes']]
        lines += ['', 'Load delivered by bench.load per loaded set-up:', '']
        lines += [f'- {name}: `{json.dumps(value)}`' for name, value in
                  isolation['loads'].items()]
        lines += ['']
        for png in sorted(out_dir.glob('isolation_cdf_*.png')):
            lines += [f'![{png.stem}]({png.name})', '']
    for outcome in outcomes:
        status = 'ok' if outcome['ok'] else f'FAILED ({outcome.get("error", "")})'
        lines += [f'## bench.{outcome["name"]} ({status}, {outcome["seconds"]:.0f} s)', '',
                  f'`python -m bench.{outcome["name"]} {" ".join(outcome["argv"])}`', '',
                  '```', outcome['output'].strip(), '```', '']
        if outcome.get('plot'):
            lines += [f'![{outcome["plot"]}]({outcome["plot"]})', '']
    if leftovers:
        lines += ['## Processes left behind (killed)', ''] + [f'- {p}' for p in leftovers]
    path = out_dir / 'report.md'
    path.write_text('\n'.join(lines) + '\n')
    return path


def _isolation_table(isolation: dict) -> str:
    from bench.isolation import table

    rows = [dict(row, latencies=[]) for row in isolation['rows']]
    return table(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=float, default=15.0,
                        help='measurement per isolation set-up (others scale with it)')
    parser.add_argument('--only', default=','.join(COMPONENTS),
                        help=f'comma-separated subset of {", ".join(COMPONENTS)}')
    parser.add_argument('--out', type=Path, help='default: bench/results/<date>')
    parser.add_argument('--tiny', action='store_true', help='smallest sizes (smoke test)')
    args = parser.parse_args(argv)
    only = args.only.split(',')
    for name in only:
        if name not in COMPONENTS:
            parser.error(f'{name} is not one of {", ".join(COMPONENTS)}')

    from sensor_workers.testing.processes import become_subreaper, live_descendants

    become_subreaper()  # whatever a benchmark leaves behind shows up as ours, and is ended
    started = datetime.datetime.now(datetime.UTC)
    out_dir = args.out or REPO / 'bench' / 'results' / f'{started:%Y-%m-%d}'
    out_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    s = args.seconds
    component_s = max(1.0, s / 3)
    outcomes, figures, isolation = [], [], None
    with tempfile.TemporaryDirectory(prefix='bench_') as tmp:
        if 'isolation' in only:
            iso_args = ['--seconds', f'{s:g}', '--out', str(out_dir)]
            if args.tiny:
                iso_args += ['--tiny', '--rates', '1000', '--setups', 'a,c']
            outcome = call('isolation', iso_args)
            outcomes.append(outcome)
            results = out_dir / 'isolation.json'
            if outcome['ok'] and results.exists():
                isolation = json.loads(results.read_text())
                figures += isolation_figures(isolation)
        if 'ft_latency' in only:
            outcome = call('ft_latency', ['--seconds', f'{component_s:g}'])
            outcomes.append(outcome)
            figures += ft_latency_figures(outcome['output'])
        if 'camera_throughput' in only:
            sizes = '640x480' if args.tiny else '640x480,2448x2048,4096x4096'
            outcome = call('camera_throughput', ['--seconds', f'{component_s:g}', '--sizes',
                                                 sizes])
            outcomes.append(outcome)
            figures += camera_figures(outcome['output'])
        if 'bridge_fanout' in only:
            if importlib.util.find_spec('bench.bridge_fanout') is None:
                outcomes.append({'name': 'bridge_fanout', 'argv': [], 'ok': False,
                                 'error': 'bench/bridge_fanout.py is not on this branch yet',
                                 'output': '', 'seconds': 0.0})
            else:
                outcome = call('bridge_fanout', ['--seconds', f'{component_s:g}', '--clients',
                                                 '1' if args.tiny else '1,4,16'])
                outcomes.append(outcome)
                figures += fanout_figures(outcome['output'])
        if 'recovery' in only:
            kills = 1 if args.tiny else 10
            outcome = run_recovery(kills, 2 * s, out_dir, Path(tmp))
            outcomes.append(outcome)
            figures += recovery_figures(outcome['output'])
    leftovers = []
    for process in live_descendants():
        leftovers.append(f'{process.pid} {" ".join(process.cmdline())[:120]}')
        process.kill()
    report = write_report(out_dir, started, args, outcomes, figures, isolation, load_before,
                          leftovers)
    print('\n# Summary\n')
    print(summary_table(figures))
    failed = [o['name'] for o in outcomes if not o['ok']]
    print(f'\nreport: {report}' + (f'\nfailed or missing: {", ".join(failed)}' if failed else ''))
    return 0 if not leftovers and all(o['ok'] or o['name'] == 'bridge_fanout'
                                      and 'not on this branch' in o.get('error', '')
                                      for o in outcomes) else 1


if __name__ == '__main__':
    sys.exit(main())
