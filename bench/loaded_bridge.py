"""The real bridge process, plus what a busy web process does to it (for the isolation bench).

Runs `sensor_workers.bridge.main.main` unchanged in this process, and adds:
- allocation churn: while the file given by `--churn-flag` exists, a thread keeps a large set of
  long-lived objects and replaces part of it all the time, as a web app's caches and request
  objects do, so the cyclic garbage collector makes full (generation 2) passes that hold the GIL;
  every GC pause is timed and summarized on exit;
- `--embed-ft PORT`: the design the project moved away from. The F/T worker's own node class,
  with its read loop thread (builtin backend + publisher), runs *inside* this process, next to
  uvicorn, instead of in its own process.

Bounded: the churn stops after `--max-seconds` and its live set is `--churn-objects` objects.

    python -m bench.loaded_bridge --churn-flag /tmp/churn [--embed-ft /tmp/port --sinc 51] \
        -- --ros-args -p port:=0
"""

import argparse
import gc
import logging
import os
from pathlib import Path
import random
import sys
import threading
import time

log = logging.getLogger('loaded_bridge')


class GcTimer:
    """Time every collection of the cyclic GC (callbacks run in the collecting thread)."""

    def __init__(self) -> None:
        self._started = 0.0
        self.pauses_ms: dict[int, list[float]] = {0: [], 1: [], 2: []}

    def __call__(self, phase: str, info: dict) -> None:
        if phase == 'start':
            self._started = time.perf_counter()
        else:
            self.pauses_ms[info['generation']].append((time.perf_counter() - self._started) * 1e3)

    def summary(self) -> str:
        parts = []
        for generation, pauses in self.pauses_ms.items():
            if pauses:
                ordered = sorted(pauses)
                p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
                parts.append(f'gen{generation}: {len(pauses)} collections, p99 {p99:.1f} ms, '
                             f'max {ordered[-1]:.1f} ms, total {sum(pauses):.0f} ms')
        return '; '.join(parts) or 'no collections'


def churn(flag: Path, objects: int, deadline: float, stop: threading.Event) -> None:
    """Allocate like a busy web process while `flag` exists, until `deadline`."""
    rng = random.Random(0)
    live: list = []
    while not stop.is_set() and time.monotonic() < deadline:
        if not flag.exists():
            live.clear()
            stop.wait(0.1)
            continue
        # Long-lived objects: request/response dicts that reference each other (cycles), so
        # only the cyclic collector can free them. The set grows to `objects`, then a slice of
        # it is replaced on every round: survivors keep reaching generation 2.
        for _ in range(200):
            item = {'id': rng.random(), 'payload': [rng.random() for _ in range(4)], 'peer': None}
            item['peer'] = item
            if len(live) < objects:
                live.append(item)
            else:
                live[rng.randrange(objects)] = item
        # Short-lived garbage, e.g. JSON documents built and dropped per request.
        _ = [{'k': i, 'v': [i, str(i)]} for i in range(300)]
        time.sleep(0.001)


def start_embedded_ft(port: str, sinc: int, rt_priority: int):
    """Run the F/T worker node (and so its read loop thread) inside this process."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.signals import SignalHandlerOptions

    from sensor_workers.ft.node import FtNode

    context = Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    node = FtNode(context=context, parameter_overrides=[
        Parameter('port', value=port), Parameter('sinc_length', value=sinc),
        Parameter('autostart', value=True), Parameter('rt_priority', value=rt_priority)])
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)

    def spin() -> None:
        try:
            executor.spin()
        except Exception:  # noqa: BLE001 the context was shut down under us at exit
            pass

    thread = threading.Thread(target=spin, name='embedded-ft-executor', daemon=True)
    thread.start()

    def stop() -> None:
        node.release_hardware()
        rclpy.try_shutdown(context=context)
        thread.join(timeout=5.0)
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()

    return stop


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ros_args: list[str] = []
    if '--' in argv:
        split = argv.index('--')
        argv, ros_args = argv[:split], argv[split + 1:]
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--churn-flag', type=Path, help='churn while this file exists')
    parser.add_argument('--churn-objects', type=int, default=400_000,
                        help='live set of the churn (long-lived objects)')
    parser.add_argument('--max-seconds', type=float, default=900.0,
                        help='the churn stops after this long')
    parser.add_argument('--embed-ft', metavar='PORT', help='run the F/T read loop in here')
    parser.add_argument('--sinc', type=int, default=51, help='sinc_length of the embedded F/T')
    parser.add_argument('--rt-priority', type=int, default=0,
                        help='rt_priority parameter of the embedded F/T read loop thread')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='[%(levelname)s] [%(name)s]: %(message)s')

    timer = GcTimer()
    gc.callbacks.append(timer)
    stop_churn = threading.Event()
    churner = None
    if args.churn_flag is not None:
        churner = threading.Thread(
            target=churn, name='churn', daemon=True,
            args=(args.churn_flag, args.churn_objects, time.monotonic() + args.max_seconds,
                  stop_churn))
        churner.start()
    stop_ft = None
    if args.embed_ft:
        stop_ft = start_embedded_ft(args.embed_ft, args.sinc, args.rt_priority)
        log.info('embedded F/T read loop on %s (sinc %d) in pid %d', args.embed_ft, args.sinc,
                 os.getpid())

    from sensor_workers.bridge.main import main as bridge_main

    try:
        bridge_main(ros_args)
    finally:
        stop_churn.set()
        if churner is not None:
            churner.join(timeout=5.0)
        if stop_ft is not None:
            stop_ft()
        log.info('gc pauses: %s', timer.summary())
    return 0


if __name__ == '__main__':
    sys.exit(main())
