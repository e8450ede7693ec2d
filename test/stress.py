"""Shake the suite: run the integration tests N times, then once with a CPU hog on every core.

    python test/stress.py [--runs 3] [--no-hog] [--hog-nice 10] [-- extra pytest arguments]

Every run's output goes to stress-logs/<n>.log; the summary lists each failure with its log.
Exit status 1 when any run failed. The hogs are this script's own children, ended by PID.

The hogs run at nice 10 by default: they take every idle cycle and preempt the suite's
processes at every turn (timing, wake-ups, cache), which is what uncovers races, while the cell
keeps the larger share of the CPU, as on a robot that runs it above background work. At nice 0
(`--hog-nice 0`) the failures are throughput, not races: on 2 cores the camera emulator renders
56 of 150 2448x2048 frames in 5 s and a Python subscriber falls behind 1 kHz (measured).

The hogs run in a session of their own, as other work on a machine does (another login, a
service), with that session's autogroup at the same nice. Where the kernel groups tasks by
session (CONFIG_SCHED_AUTOGROUP, on by default), a task's nice weighs only inside its session;
hogs in the suite's own session starved the kernel's tty worker (flush_to_ldisc, outside every
session's group) for up to 0.56 s in the cell and 6.3 s in a minimal reproduction (2 hogs, a
thread sleeping 20 us at a time as pypylon's camera emulator does, a 1 kHz writer on a
pseudo-terminal): the simulated sensor's frames then overflowed the pseudo-terminal, a loss no
process of the cell could prevent. In a session of their own the hogs took nearly as much CPU
(102 against 111 s in 120 s) and the F/T worker's reads were never more than 24 ms apart
(traced, 120 s each).
"""

import argparse
from functools import partial
import os
from pathlib import Path
import re
import subprocess
import sys
import time

HOG = 'import time\nend = time.monotonic() + 3600\nwhile time.monotonic() < end: pass\n'


def background_priority(nice: int) -> None:
    """Lower this (new-session) process to `nice`, and its session's autogroup with it."""
    os.nice(nice)
    autogroup = Path('/proc/self/autogroup')
    if autogroup.exists():
        autogroup.write_text(str(nice))


def run_suite(log: Path, pytest_args: list[str]) -> tuple[int, list[str], float]:
    started = time.monotonic()
    with log.open('w') as out:
        code = subprocess.call(  # noqa: S603 our own interpreter
            [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-m',
             'integration', *pytest_args], stdout=out, stderr=subprocess.STDOUT)
    failures = re.findall(r'^(?:FAILED|ERROR) (\S+)', log.read_text(), re.MULTILINE)
    return code, failures, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--no-hog', action='store_true', help='skip the run under CPU load')
    parser.add_argument('--hog-nice', type=int, default=10, help='niceness of the CPU hogs')
    parser.add_argument('--logs', type=Path, default=Path('stress-logs'))
    args, pytest_args = parser.parse_known_args()
    pytest_args = [a for a in pytest_args if a != '--']
    args.logs.mkdir(exist_ok=True)
    plan = [(f'{n + 1}', False) for n in range(args.runs)]
    if not args.no_hog:
        plan.append(('hog', True))
    failed = False
    for name, hog in plan:
        hogs = [subprocess.Popen(  # noqa: S603
                    [sys.executable, '-c', HOG], start_new_session=True,
                    preexec_fn=partial(background_priority, args.hog_nice))
                for _ in range(os.cpu_count() or 1)] if hog else []
        try:
            code, failures, seconds = run_suite(args.logs / f'{name}.log', pytest_args)
        finally:
            for process in hogs:
                process.kill()
                process.wait()
        print(f'run {name}: exit {code} in {seconds:.0f} s'
              f'{f" with a CPU hog per core at nice {args.hog_nice}" if hog else ""}', flush=True)
        for failure in failures:
            print(f'  {failure}  (log: {args.logs / f"{name}.log"})')
        failed |= code != 0
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
