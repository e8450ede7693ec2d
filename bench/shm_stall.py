"""A healthy publisher stalled by another process's death: the shared-memory health-check step.

The minimal plain-rclpy reproduction of the coupling in docs/manager.md ("Fault isolation"): a
publisher at 1 kHz, as a hardware loop publishes, times every `publish()`; next to it a
subscriber is SIGKILLed and restarted at once, again and again, as a supervisor restarts a
crashed process. The replacement reuses the dead process's participant id, so its shared-memory
ports have the same numbers. The publisher keeps pushing into the dead ports until a watchdog
flags them (1-2 s), then opens the replacement's, and Fast DDS health-checks a port on open: if a
watchdog has checked it since its listener last woke (it has been idle: the data still went to
the dead port), the opener sleeps a third of the port's `healthy_check_timeout_ms` holding its
participant's send mutex, so every message of the healthy publisher waits. Run with Fast DDS's
defaults under ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (the baseline) and with the shipped
profile, in one run:

    python -m bench.shm_stall [--kills 20]

Prints per set-up the kills after which a publish took over STALL_MS (a few in twenty: it
depends on where a kill falls between watchdog passes), the slowest publish, and the time the
publisher stood still per kill, also as a ratio to the baseline's (n/a when it never stalled).
"""

import argparse
from collections.abc import Sequence
import os
from pathlib import Path
import random
import signal
import sys
import tempfile
import time

from sensor_workers.paths import FASTDDS_PROFILE_VARIABLES, fastdds_profile
from sensor_workers.shm_segments import remove_dead_segments, remove_unheld_ports
from sensor_workers.testing.processes import ProcessGroup
from sensor_workers.testing.ros_env import isolated_ros_environment

TOPIC = '/shm_stall_probe'
RATE_HZ = 1000.0
# A publish slower than this waited in a health check (an idle publish takes ~0.05 ms).
STALL_MS = 20.0
# Each subscriber lives 2-3 s, drawn anew (the stall depends on where a kill falls between the
# watchdog's 1 s passes; a fixed period would hit the same phase every time), and each kill is
# watched until the next: a watchdog flags the dead ports within 1-2 s, and the publisher then
# opens the replacement's.
LIFE_S = (2.0, 3.0)


def publish() -> int:
    """Publish at RATE_HZ until SIGTERM; print `stall <monotonic s> <ms>` for each slow publish."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from std_msgs.msg import String

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    rclpy.init()
    try:
        node = rclpy.create_node('shm_stall_publisher')
        publisher = node.create_publisher(String, TOPIC, qos_profile_sensor_data)
        message = String(data='x' * 64)
        print('ready', flush=True)
        period = 1.0 / RATE_HZ
        deadline = time.monotonic()
        while True:
            started = time.monotonic()
            publisher.publish(message)
            took = time.monotonic() - started
            if took * 1000 > STALL_MS:
                print(f'stall {started:.6f} {took * 1000:.1f}', flush=True)
            deadline = max(deadline + period, time.monotonic())
            time.sleep(max(0.0, deadline - time.monotonic()))
    finally:
        rclpy.try_shutdown()


def listen() -> int:
    """Subscribe until killed (the data arrives in DDS's own threads: nothing needs to spin)."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from std_msgs.msg import String

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    rclpy.init()
    try:
        node = rclpy.create_node('shm_stall_subscriber')
        node.create_subscription(String, TOPIC, lambda _: None, qos_profile_sensor_data)
        print('ready', flush=True)
        while True:
            time.sleep(1.0)
    finally:
        rclpy.try_shutdown()


def measure(profile: str | None, kills: int, directory: Path) -> list[list[float]]:
    """Return the slow publishes (ms) after each kill; `profile` None: Fast DDS's own."""
    env = isolated_ros_environment()
    unset: tuple[str, ...] = ()
    if profile is None:
        unset = FASTDDS_PROFILE_VARIABLES
        for name in FASTDDS_PROFILE_VARIABLES:
            env.pop(name)
    else:
        env.update(dict.fromkeys(FASTDDS_PROFILE_VARIABLES, profile))
    procs = ProcessGroup(directory, env)
    command = [sys.executable, '-m', 'bench.shm_stall']
    killed: list[float] = []
    try:
        publisher = procs.start('publisher', [*command, 'publish'], unset=unset)
        publisher.wait_for_output('^ready', timeout=60)
        subscriber = procs.start('subscriber_0', [*command, 'listen'], unset=unset)
        for index in range(1, kills + 1):
            subscriber.wait_for_output('^ready', timeout=60)
            born = killed[-1] if killed else time.monotonic()
            time.sleep(max(0.0, born + random.uniform(*LIFE_S) - time.monotonic()))
            killed.append(time.monotonic())
            subscriber.signal(signal.SIGKILL)
            subscriber.popen.wait(10)
            # Restarted at once, as a supervisor restarts a crashed subscriber (a bridge, rviz).
            subscriber = procs.start(f'subscriber_{index}', [*command, 'listen'], unset=unset)
        time.sleep(LIFE_S[1])
        stalls = [line.split()[1:] for line in publisher.output().splitlines()
                  if line.startswith('stall ')]
    finally:
        procs.stop_all()
        # What the killed subscribers left, and ports that would carry this set-up's health-check
        # timeout into the next set-up's processes (shm_segments.py).
        remove_dead_segments()
        remove_unheld_ports()
    windows = zip(killed, [*killed[1:], killed[-1] + LIFE_S[1]], strict=True)
    return [[float(ms) for at, ms in stalls if start <= float(at) < end] for start, end in windows]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('role', nargs='?', choices=('publish', 'listen'),
                        help='internal: the publisher or a subscriber process')
    parser.add_argument('--kills', type=int, default=20, help='subscribers killed per set-up')
    args = parser.parse_args(argv)
    if args.role == 'publish':
        return publish()
    if args.role == 'listen':
        return listen()
    setups = {'Fast DDS defaults (baseline)': None, 'shipped profile': str(fastdds_profile())}
    with tempfile.TemporaryDirectory(prefix='shm_stall_') as directory:
        results = {name: measure(profile, args.kills, Path(directory))
                   for name, profile in setups.items()}
    print(f'a 1 kHz publisher while a subscriber next to it is killed and replaced, '
          f'{args.kills} kills per set-up ({os.cpu_count()} CPUs, '
          f'load {os.getloadavg()[0]:.1f})')
    print(f'{"set-up":30} {"kills":>5} {f"stalled >{STALL_MS:.0f} ms":>16} '
          f'{"slowest publish ms":>18} {"stalled ms per kill":>19} {"ratio":>7}')
    baseline = None
    for name, per_kill in results.items():
        stalled = sum(1 for stalls in per_kill if stalls)
        slowest = max((max(stalls) for stalls in per_kill if stalls), default=0.0)
        mean = sum(sum(stalls) for stalls in per_kill) / len(per_kill)
        baseline = mean if baseline is None else baseline
        ratio = f'{mean / baseline:7.2f}' if baseline else f'{"n/a":>7}'
        print(f'{name:30} {len(per_kill):5d} {stalled:16d} {slowest:18.1f} {mean:19.1f} {ratio}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
