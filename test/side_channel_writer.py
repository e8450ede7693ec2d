"""A side-channel writer in a process of its own, for tests that kill it.

    python test/side_channel_writer.py PATH SLOTS FPS

Writes 64x48 mono8 frames whose every pixel is the frame's number (mod 256), stamped with that
number, at FPS; prints `ready` after the first one; runs until killed.
"""

from pathlib import Path
import sys
import time

import numpy as np

from sensor_workers.side_channel.writer import FrameWriter


def main() -> int:
    path, slots, fps = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    writer = FrameWriter(path, slots)
    frame = np.empty(64 * 48, np.uint8)
    number = 0
    while True:
        number += 1
        frame.fill(number % 256)
        writer.write(frame, number, 64, 48, 64, 'mono8')
        if number == 1:
            print('ready', flush=True)
        time.sleep(1 / fps)


if __name__ == '__main__':
    sys.exit(main())
