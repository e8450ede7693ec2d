"""A web client of a bridge on another "host": run inside that host's network namespace.

The test process cannot reach a namespace's loopback, so it runs this script there and reads the
one JSON line it prints.

    python test/remote_bridge_client.py status URL
    python test/remote_bridge_client.py stream URL SECONDS

`stream` reads /ws/wrench and /ws/image (raw frames) together for SECONDS with the bridge tests'
client (bridge_helpers.receive): samples, samples missing between the first and the last stamp
(the sensor's 1 kHz period), the largest gap, the client's queue drops, and frames with their
rate by their own stamps.
"""

import asyncio
import json
import sys

from bridge_helpers import Stream, receive
import httpx

SENSOR_PERIOD_NS = 1_000_000


def wrench_figures(stream: Stream) -> dict:
    stamps = sorted(stream.stamps)
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    lost = sum(round(gap / SENSOR_PERIOD_NS) - 1 for gap in gaps if gap > 1.5 * SENSOR_PERIOD_NS)
    return {'samples': len(stamps), 'lost': lost, 'dropped': stream.dropped,
            'span_s': (stamps[-1] - stamps[0]) / 1e9 if stamps else 0.0,
            'max_gap_ms': max(gaps, default=0) / 1e6}


async def stream(url: str, seconds: float) -> dict:
    wrench, images = await asyncio.gather(receive(f'{url}/ws/wrench', seconds),
                                          receive(f'{url}/ws/image?format=raw', seconds))
    return {'wrench': wrench_figures(wrench),
            'image': {'frames': len(images.headers), 'fps': images.frame_rate()}}


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
