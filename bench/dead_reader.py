"""Writers frozen for 2 s by a reader's death: Fast DDS's shared-memory port self-deadlock.

The minimal plain-rclpy reproduction behind config/fastdds_udp.xml and docs/manager.md
("Fault isolation"): three 1 kHz publishers (as the cell's workers publish, shipped profile) and
one subscriber of their topic (as the bridge is). The subscriber is SIGKILLed once it is fed,
and each publisher times every `publish()` until the dead subscriber's lease has run out.
Meanwhile every publisher drops and reopens the dead subscriber's shared-memory port on each
send; now and then one destroys a port object inside `SharedMemGlobal::open_port_internal`
while holding that port's named mutex and waits on itself until boost's 2 s timeout, holding its
participant's send mutex (gdb: `open_port_internal -> Port::~Port ->
try_open_and_lock_named_mutex`). Two set-ups in one run: the subscriber with the devices'
profile (a shared-memory port, as the bridge had), and with the bridge's (UDP only):

    python -m bench.dead_reader [--kills 20]

Prints per set-up the kills after which a publish took over FROZEN_MS (the deadlock), the kills
with any slow publish, and the slowest publish.
"""

import argparse
from collections.abc import Sequence
import os
from pathlib import Path
import signal
import sys
import tempfile
import time

from bench.shm_stall import STALL_MS
from sensor_workers.paths import (
    CELL_PROFILE,
    FASTDDS_PROFILE_VARIABLES,
    UDP_PROFILE,
    fastdds_profile,
)
from sensor_workers.shm_segments import remove_dead_segments, remove_unheld_ports
from sensor_workers.testing.processes import ProcessGroup
from sensor_workers.testing.ros_env import isolated_ros_environment

PUBLISHERS = 3
# The subscriber is killed this long after it is ready: matched and fed by every publisher.
FED_S = 2.0
# Each kill is watched until the dead subscriber's lease (3 s in both profiles) has run out.
WATCH_S = 4.0
# A publish this slow waited on a named mutex (the boost timeout is 2 s), not in a health check.
FROZEN_MS = 1000.0


def measure(subscriber_profile: str, kills: int, directory: Path) -> list[list[float]]:
    """Return the slow publishes (ms) of all publishers after each kill."""
    env = isolated_ros_environment()  # the publishers: the devices' profile
    procs = ProcessGroup(directory, env)
    command = [sys.executable, '-m', 'bench.shm_stall']
    windows: list[tuple[float, float]] = []
    try:
        publishers = [procs.start(f'publisher_{n}', [*command, 'publish'])
                      for n in range(PUBLISHERS)]
        for publisher in publishers:
            publisher.wait_for_output('^ready', timeout=60)
        for index in range(kills):
            subscriber = procs.start(
                f'subscriber_{index}', [*command, 'listen'],
                env=dict.fromkeys(FASTDDS_PROFILE_VARIABLES, subscriber_profile))
            subscriber.wait_for_output('^ready', timeout=60)
            time.sleep(FED_S)
            killed = time.monotonic()
            subscriber.signal(signal.SIGKILL)
            subscriber.popen.wait(10)
            time.sleep(WATCH_S)
            windows.append((killed, killed + WATCH_S))
        stalls = [line.split()[1:] for publisher in publishers
                  for line in publisher.output().splitlines() if line.startswith('stall ')]
    finally:
        procs.stop_all()
        remove_dead_segments()
        remove_unheld_ports()
    return [[float(ms) for at, ms in stalls if start <= float(at) < end]
            for start, end in windows]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--kills', type=int, default=20, help='subscribers killed per set-up')
    args = parser.parse_args(argv)
    setups = {
        "subscriber with the devices' profile (shared memory)": CELL_PROFILE,
        "subscriber with the bridge's profile (UDP only)": UDP_PROFILE,
    }
    with tempfile.TemporaryDirectory(prefix='dead_reader_') as directory:
        results = {name: measure(str(fastdds_profile(profile)), args.kills, Path(directory))
                   for name, profile in setups.items()}
    print(f'{PUBLISHERS} publishers at 1 kHz while their subscriber is killed, {args.kills} '
          f'kills per set-up ({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})')
    print(f'{"set-up":54} {f"frozen >{FROZEN_MS:.0f} ms":>16} '
          f'{f"slow >{STALL_MS:.0f} ms":>12} {"slowest publish ms":>18}')
    for name, per_kill in results.items():
        frozen = sum(1 for stalls in per_kill if any(ms >= FROZEN_MS for ms in stalls))
        slow = sum(1 for stalls in per_kill if stalls)
        slowest = max((max(stalls) for stalls in per_kill if stalls), default=0.0)
        print(f'{name:54} {frozen:10d} of {len(per_kill):<3d} {slow:12d} {slowest:18.1f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
