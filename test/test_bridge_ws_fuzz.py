"""Random websocket messages around `max_ws_message_bytes` on every endpoint of a real bridge.

Text and binary, just below, at and above the limit: each gets its documented close code
(routes/ws.py), and a wrench client connected all along keeps receiving.
"""

import asyncio
from collections.abc import Iterator
import json
import random
import time

from bridge_helpers import Bridge, receive, wrench_source
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from sensor_workers.testing.processes import ProcessGroup
from sensor_workers.testing.waiting import wait_until

pytestmark = pytest.mark.integration
TOKEN = 'ws-fuzz-token'
LIMIT = 256  # max_ws_message_bytes of the test bridge
ENDPOINTS = ('/ws/wrench', '/ws/image', '/ws/events')
RANDOM_CASES = 4  # per endpoint, besides the sizes at the limit
QUIET_S = 0.4  # how long a message the bridge accepts is watched for a close
# Longest pause of the wrench stream the client connected throughout may see (batches are 20 ms).
MAX_GAP_S = 1.0


@pytest.fixture(scope='module')
def bridge(tmp_path_factory: pytest.TempPathFactory, ros_env) -> Iterator[Bridge]:
    group = ProcessGroup(tmp_path_factory.mktemp('bridge_ws_fuzz'), ros_env)
    try:
        yield Bridge(group, f'max_ws_message_bytes:={LIMIT}', token=TOKEN)
    finally:
        group.stop_all()


def expected_close(path: str, message: str | bytes) -> int | None:
    """Return the close code routes/ws.py documents for this message (None: stays open)."""
    size = len(message if isinstance(message, bytes) else message.encode())
    if size > LIMIT:
        return 1009
    if isinstance(message, bytes):
        return 1003
    try:
        request = json.loads(message)
    except ValueError:
        return 4400
    if not isinstance(request, dict):
        return 4400
    if path == '/ws/image':
        return None if set(request) <= {'max_fps', 'format'} else 4400
    return None if not request else 4400


def messages(rng: random.Random) -> Iterator[str | bytes]:
    """Yield messages of LIMIT - 1, LIMIT and LIMIT + 1 bytes, then of random sizes."""
    for size in (LIMIT - 1, LIMIT, LIMIT + 1):
        yield rng.randbytes(size)
        yield ''.join(rng.choice('{}[]":,ab0 ') for _ in range(size))
        yield '{}'.ljust(size)  # valid requests (for /ws/image only the second), padded
        yield '{"max_fps": 5}'.ljust(size)
        yield 'é' * (size // 2) + ' ' * (size % 2)  # the limit is in bytes: 'é' is two
    for _ in range(RANDOM_CASES):
        size = rng.randrange(0, 2 * LIMIT)
        if rng.random() < 0.5:
            yield rng.randbytes(size)
        else:
            yield ''.join(chr(rng.randrange(32, 0x800)) for _ in range(size // 2))


def test_every_websocket_closes_with_the_documented_code_and_others_keep_their_data(bridge):
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    with wrench_source():
        wait_until(lambda: asyncio.run(receive(bridge.ws('/ws/wrench'), 0.5)).samples > 0, 20,
                   'wrench samples through the bridge')
        arrivals, results = asyncio.run(_fuzz(bridge, rng))
        fresh = asyncio.run(receive(bridge.ws('/ws/wrench'), 0.5))
    wrong = [(path, len(m), repr(m[:40]), got, want) for path, m, got, want in results
             if got != want]
    assert not wrong, f'seed {seed}: (endpoint, size, start, close code, documented): {wrong}'
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert len(arrivals) > 10 and max(gaps) < MAX_GAP_S, f'seed {seed}: gaps {max(gaps):.2f} s'
    assert bridge.get('/health').status_code == 200
    assert bridge.status()['clients'] == []
    assert fresh.samples > 0 and fresh.dropped == 0


async def _fuzz(bridge: Bridge, rng: random.Random):
    """Send every message on a new connection while one wrench client reads throughout."""
    stop = asyncio.Event()
    arrivals: list[float] = []

    async def watch() -> None:
        async with connect(bridge.ws('/ws/wrench'), compression=None) as ws:
            while not stop.is_set():
                json.loads(await asyncio.wait_for(ws.recv(), MAX_GAP_S))
                arrivals.append(time.monotonic())

    watcher = asyncio.create_task(watch())
    results = []
    started = time.monotonic()
    for path in ENDPOINTS:
        for message in messages(rng):
            want = expected_close(path, message)
            got = await _close_code(bridge.ws(path), message,
                                    QUIET_S if want is None else 5.0)
            results.append((path, message, got, want))
    stop.set()
    await watcher
    assert time.monotonic() - started < 60
    return arrivals, results


async def _close_code(url: str, message: str | bytes, within_s: float) -> int | None:
    """Send one message; return the close code the bridge sends within `within_s`, else None.

    bridge_helpers.close_code waits for a pause between messages, which /ws/wrench never makes.
    """
    async with connect(url, max_size=None, compression=None) as ws:
        await ws.send(message)
        deadline = time.monotonic() + within_s
        try:
            while True:
                await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
        except TimeoutError:
            return None
        except ConnectionClosed:
            pass
    return ws.close_code
