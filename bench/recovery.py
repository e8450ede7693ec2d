"""Recovery of the manager: kill -9 each worker N times and time what follows.

Per device it prints, over the kills, p50/p99/max of
- detection: kill -> the manager's `exited` event received on /safety/worker_events;
- back: kill -> the first data message of the new process received (a new writer: its
  publication sequence numbers start again; header stamps cannot tell, the F/T stamp mapper may
  put a sample a few ms ahead of the host clock);
and what each kill cost the *other* devices over the OBSERVE_S after it: their largest arrival
gap and the samples they lost (by publication sequence number, at a subscriber deep enough to
take a catch-up burst), and the failures the manager decided itself (`heartbeat_missed`,
`stalled`: no device but the killed one was touched).

`--bridge-kills N` then kills a bridge N times, each a fresh one killed BRIDGE_FED_S after it
listens (subscribed and fed), and prints what each kill cost every device the same way.
`--bridge-profile FILE` hands it that Fast DDS profile instead of its own (e.g.
config/fastdds.xml, the shared-memory profile the bridge had before config/fastdds_udp.xml).

    python -m bench.recovery [--kills 20] [--seconds S] [--devices camera ft] [--no-standby]
                             [--bridge-kills N] [--bridge-profile FILE]
"""

import argparse
from collections.abc import Sequence
import importlib.util
import os
from pathlib import Path
import signal
import statistics
import sys
import time

from sensor_workers.testing.ros_env import apply_isolated_ros_environment

ENV = apply_isolated_ros_environment()  # before any DDS participant exists

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from geometry_msgs.msg import WrenchStamped  # noqa: E402
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
import yaml  # noqa: E402

from sensor_workers import paths, qos  # noqa: E402
from sensor_workers.diagnostics import latest_status, status_values  # noqa: E402
from sensor_workers.paths import FASTDDS_PROFILE_VARIABLES  # noqa: E402
from sensor_workers.testing.processes import ProcessGroup, log_directory  # noqa: E402
from sensor_workers.testing.ros_probe import STREAM_BATCH_S, RosProbe, StreamStats  # noqa: E402
from sensor_workers.testing.waiting import wait_until  # noqa: E402

TOPICS = {'ft': ('/ft/wrench', WrenchStamped), 'camera': ('/camera/image_raw', Image)}
# Between kills the device runs this long, longer than the backoff reset, so every kill is a
# "first failure" (initial delay), as in production where crashes are rare.
SETTLE_S = 1.5
# After a kill, the other devices are watched this long (health checks and port regeneration of
# the dead participant ran up to ~4 s after a kill on main).
OBSERVE_S = 4.0
# Deep enough for the catch-up after a DDS send stall: what is lost is lost by the worker.
DEEP = {'ft': 3000, 'camera': 60}
FALSE_FAILURES = ('heartbeat_missed', 'stalled')
POLL_S = 0.002  # the detection and recovery times are read to this resolution
# A bridge is killed this long after it listens: its readers are matched and fed by then.
BRIDGE_FED_S = 6.0


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Bench:
    def __init__(self, devices: list[str], directory: Path, standby: bool = True) -> None:
        self.devices = devices
        self.procs = ProcessGroup(directory, ENV)
        self.probe = RosProbe('recovery_bench', batch_s=STREAM_BATCH_S)
        self.states = self.probe.collect(DiagnosticArray, '/manager/device_states', qos.LATCHED)
        self.events = self.probe.collect(DiagnosticStatus, '/safety/worker_events',
                                         qos.LATCHED_EVENTS)
        self.streams: dict[str, StreamStats] = {
            d: self.probe.count_stream(TOPICS[d][1], TOPICS[d][0], QoSProfile(
                history=HistoryPolicy.KEEP_LAST, depth=DEEP[d],
                reliability=ReliabilityPolicy.BEST_EFFORT)) for d in devices}
        config = yaml.safe_load(paths.config_file('sim.yaml').read_text())
        config['manager']['ros__parameters'].update({
            'devices': devices, 'restart_backoff_reset_s': 1.0,
            'degraded_after_failures': 1000, 'warm_standby': standby})
        if 'ft' in devices:
            # As under `sensor-workers up`: the simulated sensor is a device of its own that
            # outlives the killed workers, not their child.
            ft = config['ft']['ros__parameters']
            link = directory / 'ft_port'
            sim = self.procs.start_python('sim', 'sensor_workers.ft.sim', '--sinc',
                                          str(ft['sinc_length']), '--link', str(link))
            sim.wait_for_output('^port: ', timeout=30)
            ft['port'] = str(link)
        config_path = directory / 'recovery.yaml'
        config_path.write_text(yaml.safe_dump(config))
        self.manager = self.procs.start_python(
            'manager', 'sensor_workers.manager.node', '--ros-args', '--params-file',
            str(config_path))

    def close(self) -> None:
        self.probe.close()
        self.procs.stop_all()

    def state(self, device: str) -> dict[str, str]:
        status = latest_status(self.states.snapshot()[0], device)
        return {} if status is None else status_values(status)

    def flowing(self, device: str, since: float) -> bool:
        last = self.streams[device].last_arrival
        return last is not None and last > since

    def false_failures(self, since: float) -> int:
        messages, arrival = self.events.snapshot()
        return sum(1 for m, t in zip(messages, arrival, strict=True)
                   if t >= since and status_values(m)['event'] in FALSE_FAILURES)

    def kill_once(self, device: str) -> tuple[float, float, float, int, int]:
        """Kill `device`; return detection, back, the others' largest gap, lost, false failures."""
        wait_until(lambda: self.state(device).get('state') == 'active'
                   and self.flowing(device, time.monotonic() - 0.3)
                   and self.state(device).get('standby') in ('ready', 'off'), 60,
                   f'{device} running (with its warm standby ready, if on)')
        pid = int(self.state(device)['pid'])
        others = [self.streams[d] for d in self.devices if d != device]
        for stream in others:
            stream.reset()
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)

        def exited():
            messages, arrival = self.events.snapshot()
            for message, t in zip(messages, arrival, strict=True):
                values = status_values(message)
                if (message.name == device and values['event'] == 'exited'
                        and values['pid'] == str(pid)):
                    return t
            return None

        def first_new():
            at = self.streams[device].new_writer_at
            return at if at is not None and at > killed else None

        detected = wait_until(exited, 10, f'{device} exited event', period=POLL_S)
        back = wait_until(first_new, 30, f'{device} data from the new process', period=POLL_S)
        time.sleep(max(0.0, killed + OBSERVE_S - time.monotonic()))
        gap = max((s.largest_gap_s for s in others), default=0.0)
        lost = sum(s.lost for s in others)
        return detected - killed, back - killed, gap, lost, self.false_failures(killed)

    def kill_bridge_once(self, index: int, profile: str | None) -> tuple[float, int, int]:
        """Start a bridge, kill it once fed; return the devices' largest gap, lost, failures."""
        env = None if profile is None else dict.fromkeys(FASTDDS_PROFILE_VARIABLES, profile)
        bridge = self.procs.start_python(f'bridge_{index}', 'sensor_workers.bridge', '--ros-args',
                                         '-p', 'port:=0', '-p', 'host:=127.0.0.1', env=env)
        bridge.wait_for_output('listening on', timeout=60)
        time.sleep(BRIDGE_FED_S)
        for stream in self.streams.values():
            stream.reset()
        killed = time.monotonic()
        bridge.signal(signal.SIGKILL)
        bridge.popen.wait(10)
        time.sleep(OBSERVE_S)
        gap = max(s.largest_gap_s for s in self.streams.values())
        lost = sum(s.lost for s in self.streams.values())
        return gap, lost, self.false_failures(killed)

    def run(self, kills: int, seconds: float | None) -> dict[str, list[tuple]]:
        wait_until(lambda: all(self.state(d).get('state') == 'active' for d in self.devices), 90,
                   'devices active')
        results: dict[str, list[tuple]] = {d: [] for d in self.devices}
        deadline = None if seconds is None else time.monotonic() + seconds
        for _ in range(kills):
            for device in self.devices:
                results[device].append(self.kill_once(device))
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(SETTLE_S)
        return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--kills', type=int, default=20, help='kills per device')
    parser.add_argument('--seconds', type=float, default=None,
                        help='stop killing after this long (at least one kill per device)')
    available = [d for d in TOPICS if importlib.util.find_spec(f'sensor_workers.{d}')
                 and importlib.util.find_spec(f'sensor_workers.{d}.node')]
    parser.add_argument('--devices', nargs='+', default=available, choices=list(TOPICS))
    parser.add_argument('--no-standby', action='store_true',
                        help='restart from scratch (manager parameter warm_standby: false)')
    parser.add_argument('--keep', type=Path, default=None,
                        help='write the process logs (manager and workers) into this directory')
    parser.add_argument('--bridge-kills', type=int, default=0,
                        help='then kill a freshly started, fed bridge this many times')
    parser.add_argument('--bridge-profile', default=None,
                        help="Fast DDS profile for the bridge (default: the bridge's own)")
    args = parser.parse_args(argv)
    with log_directory(args.keep, 'recovery_') as directory:
        bench = Bench(args.devices, directory, standby=not args.no_standby)
        try:
            results = bench.run(args.kills, args.seconds)
            bridge = [bench.kill_bridge_once(n, args.bridge_profile)
                      for n in range(args.bridge_kills)]
        except TimeoutError as error:
            print(f'recovery bench failed: {error}\n{bench.manager.tail(40)}', file=sys.stderr)
            return 1
        finally:
            bench.close()
    print(f'recovery after kill -9, warm standby {"off" if args.no_standby else "on"} '
          f'(ROS_DOMAIN_ID={ENV["ROS_DOMAIN_ID"]}, '
          f'{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})')
    print(f'{"killed":8} {"kills":>5}  {"detection ms p50/p99/max":>26}  '
          f'{"kill -> first new message ms p50/p99/max":>42}  '
          f'{"others: max gap ms, lost":>25}  {"false failures":>14}')
    for device, samples in results.items():
        if not samples:  # --kills 0: bridge kills only
            continue
        detection = [s[0] * 1000 for s in samples]
        back = [s[1] * 1000 for s in samples]
        gaps = [s[2] * 1000 for s in samples]
        print(f'{device:8} {len(samples):5d}  '
              f'{statistics.median(detection):8.0f} {percentile(detection, 0.99):8.0f} '
              f'{max(detection):8.0f}  '
              f'{statistics.median(back):13.0f} {percentile(back, 0.99):13.0f} '
              f'{max(back):13.0f}  '
              f'{max(gaps):17.0f} {sum(s[3] for s in samples):7d}  '
              f'{sum(s[4] for s in samples):14d}')
    print("per kill (killed device: back ms, others' largest gap ms, lost):")
    for device, samples in results.items():
        print(f'  {device}: ' + ', '.join(f'{s[1] * 1000:.0f}/{s[2] * 1000:.0f}/{s[3]}'
                                          for s in samples))
    if bridge:
        print_bridge_kills(bridge, args.bridge_profile)
    return 0


def print_bridge_kills(samples: list[tuple[float, int, int]], profile: str | None) -> None:
    gaps = [s[0] * 1000 for s in samples]
    paused = sum(1 for gap in gaps if gap >= 500)
    print(f'bridge kills ({profile or "its own profile"}): {len(samples)}, devices paused '
          f'>= 500 ms after {paused}, largest gap {max(gaps):.0f} ms, lost '
          f'{sum(s[1] for s in samples)}, false failures {sum(s[2] for s in samples)}')
    print("  per kill (devices' largest gap ms/lost): "
          + ', '.join(f'{s[0] * 1000:.0f}/{s[1]}' for s in samples))


if __name__ == '__main__':
    sys.exit(main())
