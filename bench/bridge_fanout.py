"""Fan-out of image 640x480 (or `--size`) @ 30 fps + wrench 1 kHz to 1, 4 and 16 websocket clients.

In one run, against the same ROS publisher process:
- `bridge`: our bridge process, its own endpoints (raw frames, `format=raw`, and wrench batches);
- `bridge-fox`: the same bridge process, `WS /foxglove` (CDR as received, one message per
  wrench sample);
- `sdk`: an rclpy relay (EventsExecutor, raw subscriptions) into foxglove-sdk's Python websocket
  server, fed the same CDR bytes with the same ros2msg schemas.
Foxglove clients (`foxglove.sdk.v1`) subscribe to the wrench and image channels. Every reading
client runs in a process of its own, as real clients do (15 readers of one message per sample in
one process measured that process, not the server). With more than one client, one of them
completes the handshake (and, for Foxglove, subscribes) and then never reads.

Per relay and client count: delivered image fps and wrench samples/s per reading client
(min-max), wrench samples lost (sequence numbers the publisher put in force.x), wrench latency
stamp -> client p50/p99, relay CPU % of a core (the bridge's is its whole process: both of its
endpoints' ROS intake), CPU seconds per delivered MB and CPU milliseconds per delivered image
(over all clients).

    python -m bench.bridge_fanout --seconds 10 [--size 2448x2048]
"""

import argparse
import asyncio
import base64
from collections.abc import AsyncIterator
import json
import multiprocessing
from multiprocessing.sharedctypes import Synchronized
import os
from pathlib import Path
import socket
import struct
import sys
import tempfile
import threading
import time

import numpy as np

FPS, WRENCH_HZ = 30, 1000
TOPICS = ('/ft/wrench', '/camera/image_raw')
RELAYS = ('bridge', 'bridge-fox', 'sdk')
# From the moment every reader is connected (and subscribed) to the measured window.
SETTLE_S = 1.0


def publish(seconds: float, width: int, height: int) -> None:
    """Role `publish`: Image mono8 @ 30 and WrenchStamped @ 1 kHz (seq in force.x)."""
    from geometry_msgs.msg import WrenchStamped
    import rclpy
    from sensor_msgs.msg import Image

    from sensor_workers import qos

    rclpy.init()
    node = rclpy.create_node('fanout_source')
    wrench_pub = node.create_publisher(WrenchStamped, '/ft/wrench', 1000)
    image_pub = node.create_publisher(Image, '/camera/image_raw', qos.SENSOR_DATA)
    frames = [np.roll(np.tile(np.arange(width, dtype=np.uint8), (height, 1)), i * 8, axis=1)
              .tobytes() for i in range(16)]
    print('ready', flush=True)
    start = time.monotonic()
    seq = 0
    while time.monotonic() - start < seconds and rclpy.ok():
        seq += 1
        due = start + seq / WRENCH_HZ
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        stamp = node.get_clock().now().to_msg()
        wrench = WrenchStamped()
        wrench.header.stamp = stamp
        wrench.wrench.force.x = float(seq)
        try:
            wrench_pub.publish(wrench)
        except Exception:  # noqa: BLE001 SIGTERM shut the context down under us
            break
        if seq % (WRENCH_HZ // FPS) == 0:
            image = Image(height=height, width=width, encoding='mono8', step=width)
            image.header.stamp = stamp
            image.data = frames[seq % len(frames)]
            image_pub.publish(image)
    node.destroy_node()
    rclpy.try_shutdown()


def sdk_relay(port: int) -> None:
    """Role `sdk`: relay the two topics' CDR bytes into foxglove-sdk's websocket server."""
    import foxglove
    from geometry_msgs.msg import WrenchStamped
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.experimental import EventsExecutor
    from sensor_msgs.msg import Image

    from sensor_workers import qos
    from sensor_workers.bridge.foxglove.schema import message_schema
    from sensor_workers.bridge.node import type_name

    rclpy.init()
    node = rclpy.create_node('sdk_relay')
    server = foxglove.start_server(host='127.0.0.1', port=port)
    for msg_type, topic, profile in ((WrenchStamped, '/ft/wrench', qos.WRENCH_READER),
                                     (Image, '/camera/image_raw', qos.IMAGE_READER)):
        name = type_name(msg_type)
        channel = foxglove.Channel(topic, message_encoding='cdr', schema=foxglove.Schema(
            name=name, encoding='ros2msg', data=message_schema(name).encode()))
        # As the bridge does: the serialized message as received, log time = receipt.
        node.create_subscription(
            msg_type, topic, lambda data, c=channel: c.log(data, log_time=time.time_ns()),
            profile, raw=True)
    executor = EventsExecutor()
    executor.add_node(node)
    print(f'ready {server.port}', flush=True)
    try:
        # The same executor and spin loop as the bridge (EventsExecutor.spin() stalled here).
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        server.stop()


class Result:
    def __init__(self) -> None:
        self.frames = 0
        self.frame_bytes = 0
        self.samples: list[int] = []
        self.latency_ms: list[float] = []
        self.bytes = 0


async def _raw_stall(url: str, seconds: float, subscribe: bool) -> None:
    """Handshake (Foxglove: subscribe to wrench and image), then never read again."""
    from websockets.asyncio.client import connect

    if subscribe:
        async with connect(url, subprotocols=['foxglove.sdk.v1'], max_size=None,
                           compression=None, close_timeout=0.5) as ws:
            channels = await _foxglove_subscribe(ws)
            assert channels
            ws.transport.pause_reading()
            try:
                await asyncio.sleep(seconds)
            finally:
                ws.transport.abort()
        return
    host_port, _, path = url.split('//', 1)[1].partition('/')
    host, port = host_port.split(':')
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f'GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n'
                  f'Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n'
                  'Sec-WebSocket-Version: 13\r\n\r\n').encode())
    await reader.readuntil(b'\r\n\r\n')
    writer.transport.pause_reading()
    try:
        await asyncio.sleep(seconds)
    finally:
        writer.transport.abort()


async def _foxglove_subscribe(ws) -> dict[int, str]:
    channels: dict[int, str] = {}
    while len(channels) < len(TOPICS):
        message = json.loads(await ws.recv())
        if message.get('op') == 'advertise':
            channels.update({c['id']: c['topic'] for c in message['channels']
                             if c['topic'] in TOPICS})
    subscriptions = [{'id': cid, 'channelId': cid} for cid in channels]
    await ws.send(json.dumps({'op': 'subscribe', 'subscriptions': subscriptions}))
    return channels


async def _messages(ws, start: Synchronized, seconds: float) -> AsyncIterator[str | bytes]:
    """Yield what `ws` receives in the measured window.

    The window opens at `start` (time.time(), set by the parent process once every reader is
    connected; 0 until then) and lasts `seconds`.
    """
    while True:
        begin = start.value
        if begin and time.time() >= begin + seconds:
            return
        try:
            message = await asyncio.wait_for(
                ws.recv(), max(0.001, begin + seconds - time.time()) if begin else 0.1)
        except TimeoutError:
            continue
        begin = start.value
        if begin and begin <= time.time() < begin + seconds:
            yield message


def _wrench_batch(result: Result, samples: list, now_ns: int) -> None:
    """Take samples that start with (stamp ns, sequence number in force.x)."""
    for sample in samples:
        result.samples.append(int(sample[1]))
        result.latency_ms.append((now_ns - sample[0]) / 1e6)


async def _bridge_client(base: str, start: Synchronized, seconds: float, result: Result,
                         ready: multiprocessing.Queue) -> None:
    from websockets.asyncio.client import connect

    from sensor_workers.bridge import imaging

    async def wrench(ws) -> None:
        async for text in _messages(ws, start, seconds):
            result.bytes += len(text)
            _wrench_batch(result, json.loads(text)['samples'], time.time_ns())

    async def image(ws) -> None:
        async for data in _messages(ws, start, seconds):
            imaging.unpack(data)
            result.frames += 1
            result.bytes += len(data)

    async with connect(f'{base}/ws/wrench', compression=None) as wrench_ws, \
            connect(f'{base}/ws/image?format=raw', max_size=None, compression=None) as image_ws:
        ready.put(True)
        await asyncio.gather(wrench(wrench_ws), image(image_ws))


async def _foxglove_client(base: str, start: Synchronized, seconds: float, result: Result,
                           ready: multiprocessing.Queue) -> None:
    from websockets.asyncio.client import connect

    async with connect(base, subprotocols=['foxglove.sdk.v1'], max_size=None,
                       compression=None) as ws:
        channels = await _foxglove_subscribe(ws)
        ready.put(True)
        async for data in _messages(ws, start, seconds):
            if not isinstance(data, bytes) or data[0] != 1:
                continue
            subscription, _ = struct.unpack_from('<IQ', data, 1)
            result.bytes += len(data)
            if channels[subscription] == '/ft/wrench':
                _wrench_batch(result, [_wrench_cdr(data, 13)], time.time_ns())
            else:
                result.frames += 1


def _wrench_cdr(data: bytes, start: int) -> tuple[int, float]:
    """Return (stamp ns, force.x) of a CDR WrenchStamped at `start` (cheaper than rclpy)."""
    sec, nanosec, length = struct.unpack_from('<iII', data, start + 4)
    offset = (12 + length + 7) & ~7  # after frame_id, aligned to 8 (from the CDR body)
    return sec * 1_000_000_000 + nanosec, struct.unpack_from('<d', data, start + 4 + offset)[0]


def _reader(kind: str, base: str, start: Synchronized, seconds: float,
            ready: multiprocessing.Queue, results: multiprocessing.Queue) -> None:
    """Be one reading client, in a process of its own; put what it received in `results`."""
    result = Result()
    client = _bridge_client if kind == 'bridge' else _foxglove_client
    asyncio.run(client(base, start, seconds, result, ready))
    results.put(result)


def _measure(kind: str, base: str, pid: int, clients: int, seconds: float) -> dict:
    import psutil

    process = psutil.Process(pid)
    readers = clients - 1 if clients > 1 else 1
    context = multiprocessing.get_context('spawn')
    start, ready, results = context.Value('d', 0.0), context.Queue(), context.Queue()
    # A single reader needs no process of its own: a thread spares the ~2 s of a spawn.
    worker = threading.Thread if readers == 1 else context.Process
    processes = [worker(target=_reader, daemon=True,
                        args=(kind, base, start, seconds, ready, results))
                 for _ in range(readers)]

    async def run() -> tuple[list[Result], float]:
        loop = asyncio.get_running_loop()
        stalls = []
        if clients > 1:
            if kind == 'bridge':
                stalls = [_raw_stall(f'{base}/ws/image?format=raw', 3600, False),
                          _raw_stall(f'{base}/ws/wrench', 3600, False)]
            else:
                stalls = [_raw_stall(base, 3600, True)]
        tasks = [asyncio.create_task(s) for s in stalls]
        for reader in processes:
            reader.start()
        # The window opens once every reader is connected: 15 Python processes starting on a
        # busy 2-core host took longer than any fixed allowance.
        for _ in processes:
            await loop.run_in_executor(None, ready.get, True, 180)
        begin = time.time() + SETTLE_S
        start.value = begin
        await asyncio.sleep(max(0.0, begin - time.time()))
        cpu0 = sum(process.cpu_times()[:2])
        await asyncio.sleep(max(0.0, begin + seconds - time.time()))
        cpu = sum(process.cpu_times()[:2]) - cpu0
        received = [await loop.run_in_executor(None, results.get, True, 60) for _ in processes]
        for reader in processes:
            reader.join(10)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return received, cpu

    received, cpu = asyncio.run(run())
    elapsed = seconds
    lost = 0
    for r in received:
        if r.samples:
            lost += max(r.samples) - min(r.samples) + 1 - len(set(r.samples))
    latency = np.concatenate([np.asarray(r.latency_ms) for r in received]) \
        if any(r.latency_ms for r in received) else np.asarray([np.nan])
    megabytes = sum(r.bytes for r in received) / 1e6
    return {
        'relay': kind, 'clients': clients,
        'fps': (min(r.frames for r in received) / elapsed,
                max(r.frames for r in received) / elapsed),
        'wrench_hz': (min(len(r.samples) for r in received) / elapsed,
                      max(len(r.samples) for r in received) / elapsed),
        'lost': lost, 'p50': float(np.nanpercentile(latency, 50)),
        'p99': float(np.nanpercentile(latency, 99)),
        'cpu_pct': 100.0 * cpu / elapsed, 'cpu_s_per_mb': cpu / megabytes if megabytes else np.nan,
        'cpu_ms_per_frame': 1000.0 * cpu / frames if (frames := sum(r.frames for r in received))
        else np.nan,
        'mb_s': megabytes / elapsed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=float, default=10.0, help='measurement per set-up')
    parser.add_argument('--clients', default='1,4,16', help='client counts, comma separated')
    parser.add_argument('--relays', default=','.join(RELAYS),
                        help=f'relays to measure, comma separated (of {", ".join(RELAYS)})')
    parser.add_argument('--role', choices=('bench', 'publish', 'sdk'), default='bench',
                        help=argparse.SUPPRESS)
    parser.add_argument('--size', default='640x480', help='image WxH (mono8)')
    parser.add_argument('--port', type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split('x'))
    if args.role == 'publish':
        publish(args.seconds, width, height)
        return 0
    if args.role == 'sdk':
        sdk_relay(args.port)
        return 0

    from sensor_workers.testing.ros_env import apply_isolated_ros_environment

    env = apply_isolated_ros_environment()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test'))
    from sensor_workers.testing.processes import ProcessGroup

    counts = [int(c) for c in args.clients.split(',')]
    relays = [r for r in args.relays.split(',') if r in RELAYS]
    # The publisher outlives every set-up (readers of 16 clients took ~10 s to start here).
    total = sum(len(relays) * (args.seconds + SETTLE_S + 10 + c) for c in counts) + 30
    with tempfile.TemporaryDirectory(prefix='bridge_fanout_') as tmp:
        procs = ProcessGroup(Path(tmp), env)
        try:
            bridge = procs.start_python('bridge', 'sensor_workers.bridge', '--ros-args',
                                        '-p', 'port:=0', '-p', 'max_clients:=64')
            url = bridge.wait_for_output(r'listening on http://([0-9.]+:\d+)', 60).group(1)
            with socket.socket() as sock:
                sock.bind(('127.0.0.1', 0))
                fox_port = sock.getsockname()[1]
            fox = procs.start_python('sdk', 'bench.bridge_fanout', '--role', 'sdk',
                                     '--port', str(fox_port))
            fox.wait_for_output(r'^ready', 60)
            source = procs.start_python('source', 'bench.bridge_fanout', '--role', 'publish',
                                        '--seconds', str(total), '--size', args.size)
            source.wait_for_output(r'^ready', 60)
            time.sleep(2.0)  # discovery
            print(f'images {width}x{height} mono8 at {FPS} fps')
            print(f'{"relay":<11}{"clients":>8}{"img fps min-max":>17}{"wrench/s min-max":>18}'
                  f'{"lost":>7}{"p50 ms":>8}{"p99 ms":>8}{"CPU %":>7}{"MB/s":>7}'
                  f'{"CPU s/MB":>9}{"CPU ms/img":>11}', flush=True)
            for clients in counts:
                for kind, base, pid in (('bridge', f'ws://{url}', bridge.pid),
                                        ('bridge-fox', f'ws://{url}/foxglove', bridge.pid),
                                        ('sdk', f'ws://127.0.0.1:{fox_port}', fox.pid)):
                    if kind not in relays:
                        continue
                    row = _measure(kind, base, pid, clients, args.seconds)
                    stalled = ' (1 stalled)' if clients > 1 else ''
                    print(f'{kind:<11}{clients:>8}{row["fps"][0]:>8.1f}-{row["fps"][1]:<8.1f}'
                          f'{row["wrench_hz"][0]:>8.0f}-{row["wrench_hz"][1]:<9.0f}'
                          f'{row["lost"]:>7}{row["p50"]:>8.2f}{row["p99"]:>8.2f}'
                          f'{row["cpu_pct"]:>7.1f}{row["mb_s"]:>7.1f}{row["cpu_s_per_mb"]:>9.4f}'
                          f'{row["cpu_ms_per_frame"]:>11.2f}'
                          f'{stalled}', flush=True)
        finally:
            procs.stop_all()
    return 0


if __name__ == '__main__':
    sys.exit(main())
