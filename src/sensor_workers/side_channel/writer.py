"""The camera's end of the side channel: frames into a ring of slots, never waiting for anyone.

The writer holds an exclusive flock on the file for as long as it lives: readers tell a dead
writer by the lock, and a second writer of the same name (a name collision) is refused. A
writer that finds the file of a dead one (SIGKILL leaves it) takes it over: same inode, so
readers that have it mapped keep reading, and a new generation, so they drop what they knew of
the old writer's frames. On a clean close the file is removed.

`write()` is bounded: a copy of the pixels, a few word stores and a futex wake-up (a syscall
that never blocks); only a frame larger than the slots lays the file out anew (OSError if
/dev/shm has no room). It never looks at readers; a slow reader finds its frame overwritten and
says so itself (reader.py).
"""

import array
import fcntl
import logging
import os
from pathlib import Path
import time

import numpy as np

from sensor_workers.side_channel import layout
from sensor_workers.side_channel.mapping import Mapping, open_fd

log = logging.getLogger(__name__)
LOCK_WAIT_S = 1.0  # readers hold the lock shared for microseconds (their liveness probe)


class ChannelBusy(RuntimeError):
    """Another live writer has this channel: two cameras with one name, or a stuck process."""


class FrameWriter:
    """Writes the frames of one camera into the side-channel file at `path`."""

    def __init__(self, path: Path, slot_count: int = layout.DEFAULT_SLOTS,
                 frame_bytes: int = 0) -> None:
        self.path = path
        self.slot_count = slot_count
        self._fd = self._open_locked(path)
        try:
            self.generation = self._previous_generation() + 1
            self._map: Mapping | None = None
            self._layout(frame_bytes)
        except BaseException:
            os.close(self._fd)
            raise

    @staticmethod
    def _open_locked(path: Path) -> int:
        """Open and lock the file under `path`: the one that is there once the lock is held.

        A cleanup (cleanup.py) may unlink the file between our open and our lock: then lock
        what is under the name now.
        """
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            fd = open_fd(path, writer=True)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() > deadline:
                    raise ChannelBusy(f'{path} has a live writer') from None
                time.sleep(0.01)
                continue
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)

    def _previous_generation(self) -> int:
        """Return the generation a dead writer left in the file (0 for a new file)."""
        header = os.pread(self._fd, layout.HEADER.size, 0)
        if len(header) < layout.HEADER.size:
            return 0
        magic, version, *_ = layout.HEADER.unpack(header)
        if (magic, version) != (layout.MAGIC, layout.VERSION):
            return 0
        return int.from_bytes(header[layout.GENERATION_AT:layout.GENERATION_AT + 8], 'little')

    def _layout(self, frame_bytes: int) -> None:
        """(Re)lay the file out for frames of up to `frame_bytes`, as a new generation.

        The file only grows: a reader mapped to the old size must never read past its end.
        """
        slot_size = layout.slot_size_for(frame_bytes)
        size = max(layout.file_size(self.slot_count, slot_size), os.fstat(self._fd).st_size)
        # Reserved now, or refused now (ENOSPC): a full /dev/shm would otherwise show as a
        # SIGBUS in the grab loop when it first touches a slot's page.
        os.posix_fallocate(self._fd, 0, size)
        if self._map is not None:
            self._map.close()
        self._map = mapping = Mapping(self._fd, size, writable=True)
        self.capacity = slot_size - layout.SLOT_HEADER
        mapping.set_word(layout.LATEST_AT, 0)
        for seq in range(1, self.slot_count + 1):
            offset = layout.slot_offset(seq, self.slot_count, slot_size)
            mapping.set_word(offset + layout.SLOT_BEGIN_AT, 0)
            mapping.set_word(offset + layout.SLOT_END_AT, 0)
        mapping.bytes[:layout.LAYOUT.size] = np.frombuffer(layout.LAYOUT.pack(
            layout.MAGIC, layout.VERSION, self.slot_count, slot_size), np.uint8)
        mapping.set_word(layout.WRITER_PID_AT, os.getpid())
        # The generation last: a reader that sees it sees the layout above.
        mapping.set_word(layout.GENERATION_AT, self.generation)
        self._slot_size = slot_size
        self._seq = 0
        mapping.wake(layout.LATEST_AT)

    def write(self, data: bytes | memoryview | array.array | np.ndarray, stamp_ns: int,
              width: int, height: int, step: int, encoding: str,
              is_bigendian: bool = False) -> int:
        """Put one frame into the next slot; return its sequence number."""
        pixels = np.frombuffer(data, dtype=np.uint8)
        if pixels.size > self.capacity:
            self.generation += 1
            self._layout(pixels.size)
        mapping = self._map
        assert mapping is not None
        self._seq += 1
        seq = self._seq
        offset = layout.slot_offset(seq, self.slot_count, self._slot_size)
        mapping.set_word(offset + layout.SLOT_BEGIN_AT, seq)
        fields = layout.SLOT_FIELDS.pack(stamp_ns, width, height, step, is_bigendian,
                                         pixels.size, encoding.encode()[:16])
        start = offset + layout.SLOT_FIELDS_AT
        mapping.bytes[start:start + len(fields)] = np.frombuffer(fields, np.uint8)
        start = offset + layout.SLOT_HEADER
        np.copyto(mapping.bytes[start:start + pixels.size], pixels)
        mapping.set_word(offset + layout.SLOT_END_AT, seq)
        mapping.set_word(layout.LATEST_AT, seq)
        mapping.wake(layout.LATEST_AT)
        return seq

    def close(self, remove: bool = True) -> None:
        """Let go of the file; remove it (a clean stop) unless `remove` is False."""
        if self._map is not None:
            self._map.close()
            self._map = None
        if remove:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)  # releases the lock, after the unlink: no new writer meanwhile
