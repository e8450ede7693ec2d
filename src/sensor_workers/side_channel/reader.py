"""A consumer's end of the side channel: frames copied out of the ring, checked untorn.

    reader = FrameReader(channel_path(domain_id, '/camera'))
    while running:
        frame = reader.wait(timeout_s=0.5)  # the next frame; None: nothing new (yet)
        if frame is not None:
            pixels = frame.array()  # (height, width[, channels]) numpy array of its own

A reader never writes to the file and never makes the writer wait. It copies a frame out of
its slot and then checks the slot's `begin` word and the generation: if the writer came round
to that slot meanwhile (the reader fell `slot_count - 1` frames behind), the copy is thrown
away and counted in `torn`. Frames it passed over count in `skipped`: a reader in order skips
only what the ring no longer holds; `read(newest=True)` skips to the newest frame. A new
generation (a restarted camera took the file over, or the frames outgrew the slots) counts in
`restarts`, and reading goes on. A file removed by its writer (a clean stop) is let go; the
reader reopens the name when it reappears.
"""

from dataclasses import dataclass
import fcntl
import os
from pathlib import Path
import time

import numpy as np

from sensor_workers.side_channel import layout
from sensor_workers.side_channel.mapping import Mapping, open_fd

_DTYPES = {'mono16': '<u2', '16uc1': '<u2', 'bayer_rggb16': '<u2', 'bayer_bggr16': '<u2',
           'bayer_gbrg16': '<u2', 'bayer_grbg16': '<u2'}
NO_FILE_POLL_S = 0.1  # how often a reader looks for a file that is not there (yet)
_CHANNELS = {'rgb8': 3, 'bgr8': 3, '8uc3': 3, 'rgba8': 4, 'bgra8': 4, '8uc4': 4}


@dataclass(frozen=True)
class SideFrame:
    """One frame as the camera wrote it, with pixels of its own (`data`, rows of `step`)."""

    seq: int  # the writer's frame number within its generation, from 1
    generation: int
    stamp_ns: int  # header.stamp of the Image of the same frame on ~/image_raw
    width: int
    height: int
    step: int
    encoding: str
    is_bigendian: bool
    data: np.ndarray  # uint8, step * height; a view of the slot if read with copy=False

    def array(self) -> np.ndarray:
        """Return the pixels as (height, width) or (height, width, channels), without copying."""
        dtype = np.dtype(_DTYPES.get(self.encoding, 'u1'))
        if self.is_bigendian:
            dtype = dtype.newbyteorder('>')
        channels = _CHANNELS.get(self.encoding, 1)
        rows = self.data.reshape(self.height, self.step)
        pixels = rows[:, :self.width * channels * dtype.itemsize].view(dtype)
        return pixels.reshape((self.height, self.width) if channels == 1
                              else (self.height, self.width, channels))


class FrameReader:
    """Reads the frames of one camera's side channel at `path` (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.frames = 0
        self.skipped = 0
        self.torn = 0
        self.restarts = 0
        self.generation = 0
        self._fd: int | None = None
        self._map: Mapping | None = None
        self._slot_count = 0
        self._slot_size = 0
        self._last_seq = 0
        self._seen_latest = 0

    @property
    def is_open(self) -> bool:
        return self._map is not None

    def open(self) -> bool:
        """Map the file if it exists and is laid out; return whether it is mapped."""
        if self._map is not None and self._fd is not None:
            if os.fstat(self._fd).st_nlink > 0:
                return True
            self.close()  # its writer removed it: look for a new one under the name
        try:
            fd = open_fd(self.path, writer=False)
        except FileNotFoundError:
            return False
        size = os.fstat(fd).st_size
        if size < layout.PAGE:  # a writer is creating it
            os.close(fd)
            return False
        self._fd, self._map = fd, Mapping(fd, size, writable=False)
        self.generation = 0
        return self._sync_layout()

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def writer_alive(self) -> bool:
        """Tell whether a live process writes the channel (it holds the file's lock)."""
        if self._fd is None:
            return False
        try:
            fcntl.flock(self._fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        return False

    def _sync_layout(self) -> bool:
        """Follow a new generation: remap if the file grew; False if it is not laid out."""
        mapping = self._map
        assert mapping is not None and self._fd is not None
        generation = mapping.word(layout.GENERATION_AT)
        magic, version, slot_count, slot_size, *_ = layout.HEADER.unpack_from(mapping.bytes.data)
        if (magic, version) != (layout.MAGIC, layout.VERSION) or not generation:
            return False
        size = layout.file_size(slot_count, slot_size)
        if size > mapping.size:
            size = os.fstat(self._fd).st_size
            if size < layout.file_size(slot_count, slot_size):
                return False  # grown in the header, not yet in the file
            mapping.close()
            self._map = mapping = Mapping(self._fd, size, writable=False)
        if mapping.word(layout.GENERATION_AT) != generation:
            return False  # changed while we looked: next time
        if self.generation:
            self.restarts += 1
        self.generation = generation
        self._slot_count, self._slot_size = slot_count, slot_size
        self._last_seq = 0
        return True

    def read(self, newest: bool = False, copy: bool = True) -> SideFrame | None:
        """Return the next frame not read yet, or None when there is none.

        In order by default: the frame after the last one returned, as long as the ring still
        holds it (a reader that fell further behind skips to the oldest frame it can still
        get). `newest`: the newest frame, skipping any in between (a display's choice).
        `copy=False`: `data` is a read-only view of the slot itself, no copy; the writer may
        overwrite it `slot_count - 1` frames later, so check `intact(frame)` after using it.
        """
        if not self.open():
            return None
        mapping = self._map
        assert mapping is not None
        if mapping.word(layout.GENERATION_AT) != self.generation and not self._sync_layout():
            return None
        mapping = self._map  # _sync_layout remaps a file that grew
        assert mapping is not None
        for _ in range(self._slot_count):
            latest = self._seen_latest = mapping.word(layout.LATEST_AT)
            if latest == 0 or latest <= self._last_seq:
                return None
            # The writer may be filling the slot after `latest` already: leave that one out.
            oldest = max(1, latest - self._slot_count + 2)
            seq = latest if newest or not self._last_seq else max(self._last_seq + 1, oldest)
            if self._last_seq:
                self.skipped += seq - self._last_seq - 1
            frame = self._take(seq, copy)
            self._last_seq = seq
            if frame is not None:
                self.frames += 1
                return frame
            self.torn += 1  # overwritten before or while it was copied: try the next one
        return None

    def intact(self, frame: SideFrame) -> bool:
        """Tell whether the slot of `frame` still holds it (for frames read with copy=False)."""
        mapping = self._map
        if mapping is None or frame.generation != self.generation:
            return False
        offset = layout.slot_offset(frame.seq, self._slot_count, self._slot_size)
        return (mapping.word(offset + layout.SLOT_BEGIN_AT) == frame.seq
                and mapping.word(layout.GENERATION_AT) == frame.generation)

    def _take(self, seq: int, copy: bool) -> SideFrame | None:
        """Copy (or view) frame `seq` in its slot; None if the writer overwrote it meanwhile."""
        mapping, generation = self._map, self.generation
        assert mapping is not None
        offset = layout.slot_offset(seq, self._slot_count, self._slot_size)
        if mapping.word(offset + layout.SLOT_END_AT) != seq:
            return None
        start = offset + layout.SLOT_FIELDS_AT
        stamp_ns, width, height, step, bigendian, size, encoding = layout.SLOT_FIELDS.unpack(
            mapping.bytes[start:start + layout.SLOT_FIELDS.size].data)
        if size > self._slot_size - layout.SLOT_HEADER:
            return None  # fields of a newer frame being written
        start = offset + layout.SLOT_HEADER
        pixels = mapping.bytes[start:start + size]
        if copy:
            pixels = pixels.copy()
        if (mapping.word(offset + layout.SLOT_BEGIN_AT) != seq
                or mapping.word(layout.GENERATION_AT) != generation):
            return None
        return SideFrame(seq, generation, stamp_ns, width, height, step,
                         encoding.rstrip(b'\0').decode(), bool(bigendian), pixels)

    def wait(self, timeout_s: float, newest: bool = False,
             copy: bool = True) -> SideFrame | None:
        """Like `read`, sleeping up to `timeout_s` for a new frame when there is none."""
        frame = self.read(newest, copy)
        if frame is not None:
            return frame
        if self._map is None:
            time.sleep(min(timeout_s, NO_FILE_POLL_S))
            return None
        self._map.sleep(layout.LATEST_AT, self._seen_latest, timeout_s)
        return self.read(newest, copy)
