"""Remove the Fast DDS shared-memory files that dead or departed processes left behind.

Segments. Every participant maps a segment of its own, `/dev/shm/fastrtps_<16 hex>` (64 MB with
our profile, plus 512 KB for the transport rmw_fastrtps adds), and holds an flock on its
`..._el` file while it lives. A process that exits cleanly removes both; a SIGKILLed one leaves
them, ~70 MB a kill. An `_el` file nobody holds marks a segment of a dead process, as in
`fastdds shm clean`.

Ports. A participant listens on ports `fastrtps_port<N>` (52 KB), holding `..._el` of each port
while it lives; the numbers come back with the next participant that gets the same participant
id (or unique-flow port), which opens the existing file. Fast DDS removes a port only when the
last process that opened it closes it, so ports outlive their listeners whenever a writer of
theirs was killed. Such a port is not just litter: it keeps the health-check timeout of the
process that *created* it, and that timeout sets how long every other process stalls when it
first sends to the port (docs/manager.md, "Fault isolation"). A port left by a process without
our profile (1000 ms: 333 ms stalls) would silently undo the profile's 150 ms for the next
process of ours that listens on it. `remove_unheld_ports()` removes the ports that no live
process listens on or maps, under the port's own named mutex (the POSIX semaphore
`sem.fastrtps_port<N>_mutex` Fast DDS holds while it creates, opens or resets a port), so a port
being set up is never cut from its listener.
"""

from collections.abc import Iterator
import contextlib
import ctypes
import errno
import fcntl
import logging
import os
from pathlib import Path
import re
import time

SHM_DIR = Path('/dev/shm')
_SEGMENT = re.compile(r'^fastrtps_[0-9a-z]{16}$')
_PORT = re.compile(r'^fastrtps_port\d+$')
_PORT_MUTEX = re.compile(r'^sem\.(fastrtps_port\d+)_mutex$')
# A lock file this young may belong to a segment being created (file made, not yet locked).
MIN_AGE_S = 1.0
log = logging.getLogger(__name__)


def segment_locks(directory: Path = SHM_DIR) -> list[Path]:
    """Return the `_el` lock files of the segments in `directory` (ports excluded)."""
    try:
        return [p for p in directory.iterdir()
                if p.name.endswith('_el') and _SEGMENT.match(p.name.removesuffix('_el'))]
    except OSError:
        return []


def is_segment(path: str) -> bool:
    """Tell whether `path` names a participant's segment in /dev/shm (not a port, not a lock)."""
    directory, _, name = path.rpartition('/')
    return directory == str(SHM_DIR) and bool(_SEGMENT.match(name))


def remove_dead_segments(directory: Path = SHM_DIR) -> list[Path]:
    """Remove every segment whose owner is gone; return the segments removed."""
    removed = []
    for lock in segment_locks(directory):
        try:
            if time.time() - lock.stat().st_mtime < MIN_AGE_S or held(lock):
                continue
        except OSError:  # removed meanwhile
            continue
        segment = lock.with_name(lock.name.removesuffix('_el'))
        if _unlink(segment, lock):
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


def remove_unheld_ports(directory: Path = SHM_DIR) -> list[Path]:
    """Remove every port no live process listens on or maps, with its named mutex; return them.

    Not mapped, as well as not listened on: Fast DDS removes a port *by name* when the last
    process that has it open closes it. Removing a port that a writer still maps let that
    writer, later, remove the new port a live listener had created under the same name, and the
    listener went deaf: in a 6-minute soak a camera worker never became active again (20 s),
    with "Failed init_port fastrtps_port<N>: open_and_lock_file failed" from its peers.
    """
    with contextlib.ExitStack() as stack:
        candidates = []
        for port in _ports(directory):
            lock = port.with_name(f'{port.name}_el')
            try:
                if lock.exists() and held(lock):
                    continue
            except OSError:  # removed between the two calls, with its port: nothing to do
                continue
            # Held from here to the removal: nobody opens (and maps) the port meanwhile.
            if stack.enter_context(port_mutex(port.name)):
                candidates.append(port)
        # Reading every process's maps is the costly part: only when some port has no listener.
        mapped = _mapped_files() if candidates else set()
        removed = []
        for port in candidates:
            lock = port.with_name(f'{port.name}_el')
            try:
                if str(port) in mapped or (lock.exists() and held(lock)):
                    continue
            except OSError:  # removed meanwhile
                continue
            if _unlink(port, lock):
                # Its mutex goes too, while held, as Fast DDS removes it with a port it closes.
                _libc.sem_unlink(f'/{port.name}_mutex'.encode())
                removed.append(port)
    if removed:
        log.info('removed %d shared-memory ports nobody listened on', len(removed))
    return removed


def _unlink(data: Path, lock: Path) -> bool:
    """Remove a shared-memory file and its `_el` lock; False if that was not ours to do."""
    try:
        data.unlink(missing_ok=True)
        lock.unlink(missing_ok=True)
    except OSError as error:
        log.debug('%s: %s', data, error)
        return False
    return True


def _ports(directory: Path) -> list[Path]:
    """Return the ports in `directory`, and those of which only the named mutex is left."""
    try:
        names = [p.name for p in directory.iterdir()]
    except OSError:
        return []
    ports = {name for name in names if _PORT.match(name)}
    ports.update(m.group(1) for m in map(_PORT_MUTEX.match, names) if m)
    return [directory / name for name in sorted(ports)]


def _mapped_files() -> set[str]:
    """Return the paths of the files mapped by any process this user may inspect."""
    mapped = set()
    for maps in Path('/proc').glob('[0-9]*/maps'):
        try:
            text = maps.read_text(errors='replace')
        except OSError:  # gone, or another user's (whose files we could not remove anyway)
            continue
        for line in text.splitlines():
            fields = line.split(maxsplit=5)
            if len(fields) == 6:
                mapped.add(fields[5].removesuffix(' (deleted)'))
    return mapped


_libc = ctypes.CDLL(None, use_errno=True)
_libc.sem_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_uint]
_libc.sem_open.restype = ctypes.c_void_p
_libc.sem_trywait.argtypes = _libc.sem_post.argtypes = _libc.sem_close.argtypes = [
    ctypes.c_void_p]
_libc.sem_unlink.argtypes = [ctypes.c_char_p]


@contextlib.contextmanager
def port_mutex(port: str) -> Iterator[bool]:
    """Hold the named mutex of `port` if nobody holds it now; yield whether it is held.

    Fast DDS's named mutex is a boost::interprocess::named_mutex: a POSIX semaphore of count 1,
    `/dev/shm/sem.<port>_mutex`, made by whoever opens the port first and removed with the port
    by the last process that closes it (and by `remove_unheld_ports()`).
    """
    semaphore = _libc.sem_open(f'/{port}_mutex'.encode(), os.O_CREAT, 0o644, 1)
    if not semaphore:
        log.debug('%s: sem_open failed: errno %d', port, ctypes.get_errno())
        yield False
        return
    try:
        acquired = _libc.sem_trywait(semaphore) == 0
        if not acquired and ctypes.get_errno() != errno.EAGAIN:
            log.debug('%s: sem_trywait failed: errno %d', port, ctypes.get_errno())
        try:
            yield acquired
        finally:
            if acquired:
                _libc.sem_post(semaphore)
    finally:
        _libc.sem_close(semaphore)
