"""Measuring clients of the F/T stream, each in its own process: ROS, websocket or raw pty.

Every received sample is kept as (arrival time, sample counter): the counter comes from the
simulator's values (`bota_sim` encodes it in Mz), so the analysis knows when each sample was due
and which ones never came. On SIGTERM/SIGINT, on `--max-seconds` or when the websocket closes,
the records are written to `--out` (.npz) and the process exits 0. Meanwhile the newest counter
is written to `<out>.progress` every PROGRESS_S, so a benchmark can tell when a probe has caught
up with the stream.

    python -m bench.ft_probe ros --out ros.npz --max-seconds 300
    python -m bench.ft_probe ws --url ws://127.0.0.1:8080/ws/wrench --out ws.npz
    python -m bench.ft_probe pty --port /tmp/sim_link --out pty.npz

The `pty` mode reads a simulator's port itself (no worker, no DDS): the floor set by the OS's
pseudo-terminal path (the kernel hands tty data over in a kworker) on this machine.
"""

import argparse
from array import array
import asyncio
import json
import os
from pathlib import Path
import signal
import sys
import threading
import time

import numpy as np

# The probes stop by themselves even if nobody stops them.
DEFAULT_MAX_SECONDS = 900.0
PROGRESS_S = 0.05


def progress_path(out: str | Path) -> Path:
    """Return where the probe writing `out` keeps its newest counter."""
    return Path(f'{out}.progress')


class Records:
    """Arrival times and counters, appended from one thread."""

    def __init__(self, out: str) -> None:
        self.arrival_ns = array('q')
        self.counter = array('q')
        self.batch = array('q')  # websocket batch sequence number (-1 for ROS)
        self.reported_dropped = 0
        self._progress = progress_path(out)
        self._progress_due = 0

    def add(self, arrival_ns: int, counter: int, batch: int = -1) -> None:
        self.arrival_ns.append(arrival_ns)
        self.counter.append(counter)
        self.batch.append(batch)
        if arrival_ns >= self._progress_due:
            self._progress_due = arrival_ns + int(PROGRESS_S * 1e9)
            partial = self._progress.with_suffix('.partial')
            partial.write_text(str(counter))
            partial.replace(self._progress)

    def save(self, path: str, source: str) -> None:
        np.savez(path, arrival_ns=np.frombuffer(self.arrival_ns, dtype=np.int64),
                 counter=np.frombuffer(self.counter, dtype=np.int64),
                 batch=np.frombuffer(self.batch, dtype=np.int64),
                 reported_dropped=np.int64(self.reported_dropped), source=source)


def run_ros(out: str, max_seconds: float) -> int:
    from geometry_msgs.msg import WrenchStamped
    import rclpy

    from bench.observer import spin_until_stopped
    from sensor_workers import qos
    from sensor_workers.ft.sim import counter_from_wrench

    records = Records(out)

    def on_wrench(msg: WrenchStamped) -> None:
        t = msg.wrench.torque
        records.add(time.time_ns(), counter_from_wrench((0.0, 0.0, 0.0, 0.0, 0.0, t.z)))

    rclpy.init(args=['--ros-args', '-r', '__node:=ft_probe'])
    node = rclpy.create_node('ft_probe')
    # The same profile as the shipped publishers (qos.SENSOR_STREAM): what a subscriber of the
    # product would use.
    node.create_subscription(WrenchStamped, '/ft/wrench', on_wrench, qos.SENSOR_STREAM)
    spin_until_stopped(node, max_seconds, 'probe ready')
    records.save(out, 'ros')
    return 0


async def _run_ws(url: str, records: Records, max_seconds: float, stop: asyncio.Event) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    from sensor_workers.ft.sim import counter_from_wrench

    deadline = time.monotonic() + max_seconds
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            # A short close: a bridge busy at the end must not keep the probe from saving.
            async with connect(url, compression=None, max_size=None, open_timeout=5,
                               close_timeout=0.5) as ws:
                print('probe ready', flush=True)
                while not stop.is_set():
                    timeout = deadline - time.monotonic()
                    if timeout <= 0:
                        return
                    try:
                        message = await asyncio.wait_for(ws.recv(), min(timeout, 0.2))
                    except TimeoutError:
                        continue
                    now = time.time_ns()
                    batch = json.loads(message)
                    records.reported_dropped = batch.get('dropped', 0)
                    seq = batch.get('seq', -1)
                    for sample in batch['samples']:
                        records.add(now, counter_from_wrench(sample[1:7]), seq)
        except (OSError, ConnectionClosed, TimeoutError):
            # The bridge is not (yet) up or went away: try again until told to stop.
            await asyncio.sleep(0.2)


def run_ws(url: str, out: str, max_seconds: float) -> int:
    if not url.startswith('ws://127.0.0.1:'):
        raise SystemExit('ft_probe talks to ws://127.0.0.1 only')
    records = Records(out)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await _run_ws(url, records, max_seconds, stop)

    asyncio.run(main())
    records.save(out, 'ws')
    return 0


def run_pty(port: str, out: str, max_seconds: float) -> int:
    import select

    import serial

    from sensor_workers.ft.protocol import FrameParser
    from sensor_workers.ft.sim import counter_from_wrench

    records = Records(out)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    parser = FrameParser()
    deadline = time.monotonic() + max_seconds
    with serial.Serial(port, 460800, timeout=0) as link:
        link.reset_input_buffer()
        fd = link.fileno()
        print('probe ready', flush=True)
        while not stop.is_set() and time.monotonic() < deadline:
            readable, _, _ = select.select([fd], [], [], 0.05)
            if not readable:
                continue
            data = os.read(fd, 4096)
            now = time.time_ns()
            for frame in parser.feed(data):
                records.add(now, counter_from_wrench(frame.wrench))
    records.save(out, 'pty')
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('mode', choices=('ros', 'ws', 'pty'))
    parser.add_argument('--out', required=True, help='.npz file written at the end')
    parser.add_argument('--url', help='ws mode: ws://127.0.0.1:PORT/ws/wrench')
    parser.add_argument('--port', help="pty mode: the simulator's port (or its link)")
    parser.add_argument('--max-seconds', type=float, default=DEFAULT_MAX_SECONDS)
    args = parser.parse_args(argv)
    if args.mode == 'ros':
        return run_ros(args.out, args.max_seconds)
    if args.mode == 'pty':
        if not args.port:
            parser.error('pty mode needs --port')
        return run_pty(args.port, args.out, args.max_seconds)
    if not args.url:
        parser.error('ws mode needs --url')
    return run_ws(args.url, args.out, args.max_seconds)


if __name__ == '__main__':
    sys.exit(main())
