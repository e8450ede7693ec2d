"""Remove side-channel files whose writer is gone.

A writer removes its file when it stops cleanly; a SIGKILLed one cannot, and the next writer of
the same camera takes the file over. Whatever no writer took over (the camera was not
restarted) is removed here, by the test suite at its end or by hand. A file nobody holds the
lock of has no writer; a file younger than a second may be one whose writer is about to lock it.
"""

import fcntl
import logging
import os
from pathlib import Path
import time

from sensor_workers.side_channel import layout

log = logging.getLogger(__name__)
_MIN_AGE_S = 1.0


def remove_dead_channels(directory: Path = layout.SHM_DIR) -> list[Path]:
    """Remove every side-channel file in `directory` without a live writer; return them."""
    removed = []
    for path in directory.glob(f'{layout.PREFIX}*'):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            if time.time() - os.fstat(fd).st_mtime < _MIN_AGE_S:
                continue
            try:
                # Held while unlinking: a writer cannot lock (and take over) it meanwhile.
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer
            path.unlink(missing_ok=True)
            removed.append(path)
        finally:
            os.close(fd)
    if removed:
        log.info('removed %d side-channel files of dead cameras', len(removed))
    return removed
