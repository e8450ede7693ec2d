"""Remove the shared-memory files that processes killed with SIGKILL left behind.

Every participant maps a segment of its own, `/dev/shm/fastrtps_<16 hex>` (64 MB with our
profile, plus 512 KB for the transport rmw_fastrtps adds), and holds an flock on its
`..._el` file while it lives. A process that exits cleanly removes both; a SIGKILLed one leaves
them, ~70 MB a kill. An `_el` file nobody holds marks a segment of a dead process, as in
`fastdds shm clean`.

Ports (`fastrtps_port<N>`, 52 KB, with the semaphore `sem.fastrtps_port<N>_mutex`) stay while
the cell runs: a restarted worker or a warm standby takes the freed participant id and opens the
very same port a moment later (Fast DDS resets such a port in place), and a live writer may
still map it; removing it would cut the two apart. Once a cell has stopped, `remove_orphaned_files`
removes the ports no live process listens on, and pylon's GenICam semaphores once no process
has GenICam loaded.
"""

import fcntl
import logging
import os
from pathlib import Path
import re
import time

SHM_DIR = Path('/dev/shm')
_SEGMENT_LOCK = re.compile(r'^fastrtps_[0-9a-z]{16}_el$')
# Left by SIGKILLed processes. A port (with its lock file and semaphore) is dead once no
# listener holds its lock. GenICam's semaphores are opened only for a moment: they go once no
# process has GenICam loaded.
_PORT = re.compile(r'^fastrtps_port(\d+)(_el)?$')
_PORT_MUTEX = re.compile(r'^sem\.fastrtps_port(\d+)_mutex$')
_GENICAM_SEMAPHORE = re.compile(r'^sem\.[0-9a-f]+GenICam_XML$')
_GENICAM_LIBRARY = 'libGCBase'
PROC = Path('/proc')
# A lock file this young may belong to a segment being created (file made, not yet locked).
_MIN_AGE_S = 1.0
log = logging.getLogger(__name__)


def segment_locks(directory: Path = SHM_DIR) -> list[Path]:
    """Return the `_el` lock files of the segments in `directory` (ports excluded)."""
    return [p for p in _entries(directory) if _SEGMENT_LOCK.match(p.name)]


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


def remove_orphaned_files(directory: Path = SHM_DIR, proc: Path = PROC) -> list[Path]:
    """Remove the ports and semaphores in `directory` that no live process uses; return them.

    Call it only when the cell has stopped: a port without a listener while the cell runs may
    get one a moment later, the next participant that takes the freed id.
    """
    entries = [p for p in _entries(directory) if _old(p)]
    if not any(_PORT.match(p.name) or _GENICAM_SEMAPHORE.match(p.name) for p in entries):
        return []
    used = files_in_use(proc)
    live_ports = _live_ports(directory, used)
    genicam_loaded = any(_GENICAM_LIBRARY in path for path in used)

    def dead(path: Path) -> bool:
        if port := _PORT.match(path.name) or _PORT_MUTEX.match(path.name):
            return port[1] not in live_ports
        return bool(_GENICAM_SEMAPHORE.match(path.name)) and not genicam_loaded

    removed = []
    for path in entries:
        if not dead(path):
            continue
        try:
            path.unlink()
        except OSError as error:  # removed meanwhile, or not ours to remove
            log.debug('%s: %s', path, error)
            continue
        removed.append(path)
    return removed


def _live_ports(directory: Path, used: set[str]) -> set[str]:
    """Return the numbers of the ports a live process listens on.

    A listener holds the port's lock file. A port that some process maps but whose listener is
    gone takes data nobody reads (its writers drop it once they notice); one without a lock file
    at all is judged by whether anyone maps it.
    """
    live = set()
    for number in {m[1] for m in map(_PORT.match, (p.name for p in _entries(directory))) if m}:
        lock = directory / f'fastrtps_port{number}_el'
        try:
            listening = held(lock)
        except FileNotFoundError:
            listening = str(directory / f'fastrtps_port{number}') in used
        except OSError:
            listening = True  # not ours to judge
        if listening:
            live.add(number)
    return live


def files_in_use(proc: Path = PROC) -> set[str]:
    """Return the paths that live processes map or hold open (of the processes we may read)."""
    used: set[str] = set()
    for pid_dir in _entries(proc):
        if not pid_dir.name.isdigit():
            continue
        try:
            with (pid_dir / 'maps').open() as maps:
                for line in maps:
                    fields = line.rstrip('\n').split(maxsplit=5)
                    if len(fields) == 6:
                        used.add(fields[5])
            used.update(os.readlink(fd) for fd in (pid_dir / 'fd').iterdir())
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return used


def _entries(directory: Path) -> list[Path]:
    try:
        return list(directory.iterdir())
    except OSError:
        return []


def _old(path: Path) -> bool:
    """Tell whether `path` is past the age of a file being created (False if it is gone)."""
    try:
        return time.time() - path.stat().st_mtime >= _MIN_AGE_S
    except OSError:
        return False
