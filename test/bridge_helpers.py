"""Shared pieces of the bridge tests and benchmark: a bridge process and websocket clients."""

import asyncio
import base64
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
import json
import os
import socket
import threading
import time
from typing import Any

import httpx
from websockets.asyncio.client import connect

from sensor_workers.bridge import imaging
from sensor_workers.testing.processes import ManagedProcess, ProcessGroup
from sensor_workers.testing.waiting import wait_until

# What a poll of a bridge that is still starting (or a device not yet listed) raises.
NOT_YET = (httpx.HTTPError, KeyError)


@contextmanager
def wrench_source(period_s: float = 0.005) -> Iterator[None]:
    """Publish WrenchStamped on /ft/wrench (~200 Hz) from this process while in the block."""
    from geometry_msgs.msg import WrenchStamped

    from sensor_workers import qos
    from sensor_workers.testing.ros_probe import RosProbe

    probe = RosProbe('wrench_source')
    publisher = probe.publisher(WrenchStamped, '/ft/wrench', qos.SENSOR_DATA)
    stop = threading.Event()

    def publish() -> None:
        while not stop.wait(period_s):
            msg = WrenchStamped()
            msg.header.stamp = probe.node.get_clock().now().to_msg()
            msg.wrench.force.x = 1.0
            publisher.publish(msg)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        probe.close()


class Bridge:
    """A bridge process on a free port; its URL comes from the line it logs."""

    def __init__(self, group: ProcessGroup, *params: str, name: str = 'bridge',
                 token: str = '', params_file: str | None = None) -> None:
        args = ['--ros-args'] + (['--params-file', params_file] if params_file else [])
        args += ['-p', 'port:=0']
        for param in params:
            args += ['-p', param]
        if token:
            args += ['-p', f'auth_token:={token}']
        self.token = token
        self.process: ManagedProcess = group.start_python(name, 'sensor_workers.bridge',
                                                          *args)
        match = self.process.wait_for_output(r'listening on (http://[0-9.]+:\d+)', timeout=30)
        self.url = match.group(1)
        self.ws_url = 'ws' + self.url[4:]
        wait_until(lambda: self.get('/health').status_code == 200, 15, 'bridge /health',
                   tolerate=NOT_YET)

    @property
    def headers(self) -> dict[str, str]:
        return {'Authorization': f'Bearer {self.token}'} if self.token else {}

    def get(self, path: str, **kwargs) -> httpx.Response:
        kwargs.setdefault('headers', self.headers)
        return httpx.get(self.url + path, timeout=10, **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        kwargs.setdefault('headers', self.headers)
        return httpx.post(self.url + path, timeout=15, **kwargs)

    def status(self) -> dict[str, Any]:
        answer = self.get('/status')
        answer.raise_for_status()
        return answer.json()

    def ws(self, path: str, **query: Any) -> str:
        if self.token:
            query.setdefault('token', self.token)
        text = '&'.join(f'{k}={v}' for k, v in query.items())
        return f'{self.ws_url}{path}' + (f'?{text}' if text else '')


@dataclass
class Stream:
    """What one websocket client received."""

    messages: int = 0
    bytes: int = 0
    samples: int = 0
    dropped: int = 0
    headers: list[dict[str, Any]] = field(default_factory=list)
    arrival: list[float] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)
    close_code: int | None = None
    stamps: list[int] = field(default_factory=list)

    def frame_rate(self) -> float:
        """Frames per second by the frames' own stamps (free of the window's edges)."""
        stamps = [h['stamp_ns'] for h in self.headers]
        if len(stamps) < 2 or stamps[-1] <= stamps[0]:
            return 0.0
        return (len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 1e9)


async def receive(url: str, seconds: float, stream: Stream | None = None,
                  warmup: float = 0.0) -> Stream:
    """Read a /ws/wrench or /ws/image stream for `seconds` after `warmup`."""
    stream = stream or Stream()
    async with connect(url, max_size=None, compression=None) as ws:
        started = time.monotonic()
        end = started + warmup + seconds
        while (now := time.monotonic()) < end:
            try:
                message = await asyncio.wait_for(ws.recv(), end - now)
            except TimeoutError:
                break
            arrived = time.monotonic()
            now_ns = time.time_ns()
            if arrived - started < warmup:
                continue
            stream.messages += 1
            stream.bytes += len(message)
            if isinstance(message, bytes):
                header, _ = imaging.unpack(message)
                stream.headers.append(header)
                stream.arrival.append(arrived)
                stream.dropped = header['dropped']
                stream.latency_s.append((now_ns - header['stamp_ns']) / 1e9)
            else:
                batch = json.loads(message)
                stream.samples += len(batch['samples'])
                stream.stamps.extend(sample[0] for sample in batch['samples'])
                stream.dropped = batch['dropped']
                stream.arrival.extend([arrived] * len(batch['samples']))
                if batch['samples']:
                    stream.latency_s.append((now_ns - batch['samples'][0][0]) / 1e9)
    return stream


async def stalled(url: str, seconds: float) -> None:
    """Open a websocket, then never read: a real client that hung (tiny receive buffer)."""
    host_port, _, path = url.split('//', 1)[1].partition('/')
    host, port = host_port.split(':')
    reader, writer = await _small_buffer_connection(host, int(port))
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f'GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n'
                  f'Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n'
                  'Sec-WebSocket-Version: 13\r\n\r\n').encode())
    await writer.drain()
    response = await reader.readuntil(b'\r\n\r\n')
    assert b' 101 ' in response.split(b'\r\n', 1)[0], response
    transport = writer.transport
    transport.pause_reading()
    try:
        await asyncio.sleep(seconds)
    finally:
        transport.abort()


async def _small_buffer_connection(host: str, port: int):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    return await asyncio.open_connection(sock=sock)


async def close_code(url: str, send: str | bytes | None = None, timeout: float = 5.0,
                     **kwargs: Any) -> int | None:
    """Connect, optionally send one message, and return the close code the server sends."""
    async with connect(url, max_size=None, compression=None, **kwargs) as ws:
        if send is not None:
            await ws.send(send)
        try:
            while True:
                await asyncio.wait_for(ws.recv(), timeout)
        except TimeoutError:
            return None
        except Exception:  # noqa: BLE001 ConnectionClosed* carries the code
            pass
    return ws.close_code
