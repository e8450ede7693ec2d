"""Read a camera's side channel from the command line: what a consumer sees, in figures.

    python -m sensor_workers.side_channel.probe /camera --seconds 5
    python -m sensor_workers.side_channel.probe /camera --seconds 60 --lines

Reads every frame in order, in place (no copy: `read(copy=False)`, then `intact()`). Prints one
JSON line at the end: frames read, their rate by stamps, skipped, torn, restarts
(new generations), latency (arrival - header stamp) p50/p99 in ms, and with `--checksums` the
CRC-32 of every frame's pixels by stamp (to compare with the Image messages). `--lines`: also a
line per frame as it arrives, `<stamp_ns> <arrival_ns> <width> <generation> <seq>`. The domain
is ROS_DOMAIN_ID's unless `--domain` says otherwise.
"""

import argparse
import json
import sys
import time
import zlib

from sensor_workers.side_channel.layout import channel_path, domain_id_from_environment
from sensor_workers.side_channel.reader import FrameReader


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float('nan')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('node', help='fully qualified node name of the camera, e.g. /camera')
    parser.add_argument('--seconds', type=float, default=5.0,
                        help='how long to read after the first frame')
    parser.add_argument('--domain', type=int, default=None)
    parser.add_argument('--first-frame-timeout', type=float, default=30.0)
    parser.add_argument('--checksums', action='store_true')
    parser.add_argument('--lines', action='store_true')
    args = parser.parse_args(argv)
    domain = domain_id_from_environment() if args.domain is None else args.domain
    reader = FrameReader(channel_path(domain, args.node))
    stamps: list[int] = []
    latencies: list[float] = []
    checksums: dict[int, int] = {}
    torn_in_use = 0
    end = time.monotonic() + args.first_frame_timeout
    try:
        while time.monotonic() < end:
            frame = reader.wait(0.2, copy=False)
            if frame is None:
                continue
            arrival_ns = time.time_ns()
            checksum = zlib.crc32(frame.data.data) if args.checksums else 0
            if not reader.intact(frame):  # overwritten while we read it
                torn_in_use += 1
                continue
            if not stamps:
                end = time.monotonic() + args.seconds
            stamps.append(frame.stamp_ns)
            latencies.append((arrival_ns - frame.stamp_ns) / 1e6)
            if args.checksums:
                checksums[frame.stamp_ns] = checksum
            if args.lines:
                print(frame.stamp_ns, arrival_ns, frame.width, frame.generation, frame.seq,
                      flush=True)
    finally:
        reader.close()
    span_s = (stamps[-1] - stamps[0]) / 1e9 if len(stamps) > 1 else 0.0
    print(json.dumps({
        'frames': len(stamps), 'fps': (len(stamps) - 1) / span_s if span_s else 0.0,
        'skipped': reader.skipped, 'torn': reader.torn + torn_in_use,
        'restarts': reader.restarts,
        'p50_ms': percentile(latencies, 0.5), 'p99_ms': percentile(latencies, 0.99),
        'checksums': checksums}), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
