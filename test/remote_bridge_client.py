"""A web client of a bridge on another "host": run inside that host's network namespace.

The test process cannot reach a namespace's loopback, so it runs this script there and reads the
one JSON line it prints.

    python test/remote_bridge_client.py status URL
    python test/remote_bridge_client.py stream URL SECONDS

`stream` reads /ws/wrench and /ws/image (raw frames) together for SECONDS: samples, samples
missing between the first and the last stamp (the sensor's 1 kHz period), the largest gap, the
client's queue drops, and frames with their rate.
"""

import asyncio
import json
import sys
import time

import httpx
from websockets.asyncio.client import connect

SENSOR_PERIOD_NS = 1_000_000


async def wrench(url: str, seconds: float) -> dict:
    stamps: list[int] = []
    dropped = 0
    async with connect(f'{url}/ws/wrench') as socket:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            batch = json.loads(await asyncio.wait_for(socket.recv(), 5))
            stamps.extend(sample[0] for sample in batch['samples'])
            dropped = batch.get('dropped', dropped)
    stamps.sort()
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    lost = sum(round(gap / SENSOR_PERIOD_NS) - 1 for gap in gaps if gap > 1.5 * SENSOR_PERIOD_NS)
    return {'samples': len(stamps), 'lost': lost, 'dropped': dropped,
            'span_s': (stamps[-1] - stamps[0]) / 1e9 if stamps else 0.0,
            'max_gap_ms': max(gaps, default=0) / 1e6}


async def images(url: str, seconds: float) -> dict:
    frames = 0
    async with connect(f'{url}/ws/image?format=raw', max_size=None) as socket:
        await asyncio.wait_for(socket.recv(), 10)  # the first frame starts the clock
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            await asyncio.wait_for(socket.recv(), 5)
            frames += 1
    return {'frames': frames, 'fps': frames / seconds}


async def stream(url: str, seconds: float) -> dict:
    wrench_figures, image_figures = await asyncio.gather(wrench(url, seconds),
                                                         images(url, seconds))
    return {'wrench': wrench_figures, 'image': image_figures}


def main() -> int:
    mode, url = sys.argv[1], sys.argv[2]
    if mode == 'status':
        result = httpx.get(f'{url}/status', timeout=5).json()
    else:
        result = asyncio.run(stream(url.replace('http', 'ws', 1), float(sys.argv[3])))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
