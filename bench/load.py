"""A bounded web load on the bridge: websocket clients, a stalled client and HTTP requests.

Everything talks to 127.0.0.1 only, the number of connections is capped, and the whole run
ends by itself after `--seconds` (plus a few seconds to close). Kinds of load:
- `--wrench N`: clients of /ws/wrench that read everything;
- `--image-raw N` / `--image-jpeg N`: clients of /ws/image at full size (max_width=0), raw pixels
  or JPEG, reading everything;
- `--stalled N`: clients that complete the websocket handshake on /ws/image and then never read
  (a small receive buffer, so the bridge's send backs up at once);
- `--http N`: connections doing GET /status and GET /metrics back to back (JSON encoding and the
  Prometheus exposition are CPU-bound in the bridge);
- `--reconnect-s S`: readers leave after a random 0.5-S s and come back (the soak test);
- `--param-every S`: change the camera's exposure through POST /devices/camera/params.

    python -m bench.load --url http://127.0.0.1:8080 --seconds 20 --wrench 8 --image-raw 2
"""

import argparse
import asyncio
import base64
from dataclasses import dataclass, field
import json
import os
import random
import socket
import sys
import time
from urllib.parse import urlsplit

MAX_CONNECTIONS = 64
CLOSE_GRACE_S = 5.0


@dataclass
class Tally:
    messages: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    connects: int = 0
    http_requests: int = 0
    param_changes: int = 0
    param_failures: int = 0

    def count(self, kind: str, nbytes: int) -> None:
        self.messages[kind] = self.messages.get(kind, 0) + 1
        self.bytes[kind] = self.bytes.get(kind, 0) + nbytes

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def reader(base: str, path: str, kind: str, tally: Tally, deadline: float,
                 reconnect_s: float, rng: random.Random) -> None:
    """Read everything from a websocket; with `reconnect_s`, leave and come back."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    while time.monotonic() < deadline:
        leave_at = deadline
        if reconnect_s > 0:
            leave_at = min(deadline, time.monotonic() + rng.uniform(0.5, reconnect_s))
        try:
            async with connect(base + path, compression=None, max_size=None, max_queue=4,
                               open_timeout=5, close_timeout=1) as ws:
                tally.connects += 1
                while (remaining := leave_at - time.monotonic()) > 0:
                    try:
                        message = await asyncio.wait_for(ws.recv(), min(remaining, 0.5))
                    except TimeoutError:
                        continue
                    tally.count(kind, len(message))
        except (OSError, ConnectionClosed, TimeoutError):
            tally.error(kind)
            await asyncio.sleep(0.2)
        if reconnect_s > 0:
            await asyncio.sleep(rng.uniform(0.0, 0.5))


async def stalled(host: str, port: int, path: str, tally: Tally, deadline: float) -> None:
    """Handshake, then never read: the bridge's writes back up in the socket buffers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        reader_, writer = await asyncio.open_connection(sock=sock)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f'GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n'
                      f'Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n'
                      'Sec-WebSocket-Version: 13\r\n\r\n').encode())
        await writer.drain()
        await asyncio.wait_for(reader_.readuntil(b'\r\n\r\n'), 5)
        tally.connects += 1
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        writer.transport.abort()
    except (OSError, asyncio.IncompleteReadError, TimeoutError):
        tally.error('stalled')
        sock.close()


async def _http(reader_: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str,
                host: str, path: str, body: bytes = b'') -> tuple[int, bytes]:
    """One HTTP/1.1 keep-alive request; the bridge always answers with a Content-Length."""
    head = f'{method} {path} HTTP/1.1\r\nHost: {host}\r\n'
    if body:
        head += f'Content-Type: application/json\r\nContent-Length: {len(body)}\r\n'
    writer.write(head.encode() + b'\r\n' + body)
    await writer.drain()
    header = await reader_.readuntil(b'\r\n\r\n')
    status = int(header.split(b' ', 2)[1])
    length = 0
    for line in header.split(b'\r\n'):
        if line.lower().startswith(b'content-length:'):
            length = int(line.split(b':', 1)[1])
    return status, await reader_.readexactly(length)


async def http_load(host: str, port: int, tally: Tally, deadline: float) -> None:
    """GET /status and /metrics back to back on one keep-alive connection."""
    while time.monotonic() < deadline:
        try:
            reader_, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
            try:
                while time.monotonic() < deadline:
                    for path in ('/status', '/metrics'):
                        status, body = await asyncio.wait_for(
                            _http(reader_, writer, 'GET', host, path), 10)
                        if status != 200:
                            tally.error('http')
                        tally.http_requests += 1
                        tally.count('http', len(body))
            finally:
                writer.close()
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            tally.error('http')
            await asyncio.sleep(0.2)


async def param_changes(host: str, port: int, every_s: float, tally: Tally,
                        deadline: float, rng: random.Random) -> None:
    """Change the camera's exposure through the bridge now and then."""
    while time.monotonic() + every_s < deadline:
        await asyncio.sleep(every_s)
        body = json.dumps({'exposure_us': rng.choice([5000.0, 8000.0, 10000.0])}).encode()
        try:
            reader_, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
            try:
                status, _ = await asyncio.wait_for(
                    _http(reader_, writer, 'POST', host, '/devices/camera/params', body), 10)
            finally:
                writer.close()
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            status = 0
        if status == 200:
            tally.param_changes += 1
        else:
            tally.param_failures += 1


async def run(args: argparse.Namespace) -> Tally:
    parts = urlsplit(args.url)
    host, port = parts.hostname, parts.port
    ws_base = f'ws://{host}:{port}'
    tally = Tally()
    deadline = time.monotonic() + args.seconds
    rng = random.Random(args.seed)
    tasks = []
    for _ in range(args.wrench):
        tasks.append(reader(ws_base, '/ws/wrench', 'wrench', tally, deadline, args.reconnect_s,
                            random.Random(rng.random())))
    for _ in range(args.image_raw):
        tasks.append(reader(ws_base, '/ws/image?format=raw&max_width=0', 'image_raw', tally,
                            deadline, args.reconnect_s, random.Random(rng.random())))
    for _ in range(args.image_jpeg):
        tasks.append(reader(ws_base, '/ws/image?format=jpeg&max_width=0', 'image_jpeg', tally,
                            deadline, args.reconnect_s, random.Random(rng.random())))
    for _ in range(args.events):
        tasks.append(reader(ws_base, '/ws/events', 'events', tally, deadline, args.reconnect_s,
                            random.Random(rng.random())))
    for _ in range(args.stalled):
        tasks.append(stalled(host, port, '/ws/image?format=raw&max_width=0', tally, deadline))
    for _ in range(args.http):
        tasks.append(http_load(host, port, tally, deadline))
    if args.param_every > 0:
        tasks.append(param_changes(host, port, args.param_every, tally, deadline, rng))
    # Bounded in time even if a task hangs: everything is cancelled after the grace period.
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), args.seconds + CLOSE_GRACE_S)
    except TimeoutError:
        pass
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--url', required=True, help='http://127.0.0.1:PORT of the bridge')
    parser.add_argument('--seconds', type=float, default=20.0, help='duration of the load')
    parser.add_argument('--wrench', type=int, default=8)
    parser.add_argument('--image-raw', type=int, default=2)
    parser.add_argument('--image-jpeg', type=int, default=2)
    parser.add_argument('--events', type=int, default=2)
    parser.add_argument('--stalled', type=int, default=1)
    parser.add_argument('--http', type=int, default=4)
    parser.add_argument('--reconnect-s', type=float, default=0.0,
                        help='readers leave after a random 0.5-S s and reconnect (0: stay)')
    parser.add_argument('--param-every', type=float, default=0.0,
                        help='change the camera exposure every S s through the bridge (0: off)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    host = urlsplit(args.url).hostname
    if host != '127.0.0.1':
        parser.error('the load generator talks to 127.0.0.1 only')
    total = (args.wrench + args.image_raw + args.image_jpeg + args.events + args.stalled
             + args.http)
    if total > MAX_CONNECTIONS:
        parser.error(f'{total} connections asked for; at most {MAX_CONNECTIONS}')
    if not 0 < args.seconds <= 3600:
        parser.error('--seconds must be in (0, 3600]')
    started = time.monotonic()
    tally = asyncio.run(run(args))
    elapsed = time.monotonic() - started
    summary = {
        'seconds': round(elapsed, 1),
        'messages_per_s': {k: round(v / elapsed, 1) for k, v in tally.messages.items()},
        'mbytes_per_s': {k: round(v / elapsed / 1e6, 1) for k, v in tally.bytes.items()},
        'http_requests': tally.http_requests, 'connects': tally.connects,
        'errors': tally.errors, 'param_changes': tally.param_changes,
        'param_failures': tally.param_failures,
    }
    print('load: ' + json.dumps(summary), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
