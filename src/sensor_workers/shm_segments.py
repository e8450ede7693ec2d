"""Remove the Fast DDS shared-memory segments that processes killed with SIGKILL left behind.

Every participant maps a segment of its own, `/dev/shm/fastrtps_<16 hex>` (64 MB with our
profile, plus 512 KB for the transport rmw_fastrtps adds), and holds an flock on its
`..._el` file while it lives. A process that exits cleanly removes both; a SIGKILLed one leaves
them, ~70 MB a kill. An `_el` file nobody holds marks a segment of a dead process, as in
`fastdds shm clean`.

Ports (`fastrtps_port<N>`, 52 KB) are left alone: a restarted worker or a warm standby takes the
freed participant id and opens the very same port a moment later (Fast DDS resets such a port
in place), and a live writer may still map it; removing it would cut the two apart.
"""

import fcntl
import logging
from pathlib import Path
import re
import time

SHM_DIR = Path('/dev/shm')
_SEGMENT_LOCK = re.compile(r'^fastrtps_[0-9a-z]{16}_el$')
# A lock file this young may belong to a segment being created (file made, not yet locked).
_MIN_AGE_S = 1.0
log = logging.getLogger(__name__)


def segment_locks(directory: Path = SHM_DIR) -> list[Path]:
    """Return the `_el` lock files of the segments in `directory` (ports excluded)."""
    try:
        return [p for p in directory.iterdir() if _SEGMENT_LOCK.match(p.name)]
    except OSError:
        return []


def remove_dead_segments(directory: Path = SHM_DIR) -> list[Path]:
    """Remove every segment whose owner is gone; return the segments removed."""
    removed = []
    for lock in segment_locks(directory):
        try:
            if time.time() - lock.stat().st_mtime < _MIN_AGE_S or held(lock):
                continue
            segment = lock.with_name(lock.name.removesuffix('_el'))
            segment.unlink(missing_ok=True)
            lock.unlink(missing_ok=True)
        except OSError as error:  # removed meanwhile, or not ours to remove
            log.debug('%s: %s', lock, error)
            continue
        removed.append(segment)
    return removed


def held(lock: Path) -> bool:
    """Tell whether a live process holds `lock` (taking it briefly when nobody does)."""
    with lock.open('rb') as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False
