"""A shared mapping of a side-channel file, with single-store word access and a futex.

The 64-bit words (sequence numbers, generation) are read and written through a numpy uint64
view: one aligned 8-byte load or store each, never torn. Pixels are copied with numpy, which
releases the GIL for the copy. The futex lets readers sleep until the writer publishes a frame
instead of polling; the writer's wake-up is a non-blocking syscall.
"""

import ctypes
import mmap
import os

import numpy as np

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_SYS_FUTEX = 202  # x86-64
_FUTEX_WAIT = 0
_FUTEX_WAKE = 1
_WAKE_ALL = 0x7FFFFFFF


class _Timespec(ctypes.Structure):
    _fields_ = [('tv_sec', ctypes.c_long), ('tv_nsec', ctypes.c_long)]


class Mapping:
    """`size` bytes of the open file `fd`, mapped shared (read-only for readers)."""

    def __init__(self, fd: int, size: int, writable: bool) -> None:
        self.size = size
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        self._mmap = mmap.mmap(fd, size, mmap.MAP_SHARED, prot)
        self.bytes = np.frombuffer(self._mmap, dtype=np.uint8)
        self.words = self.bytes.view('<u8')
        self.address = self.bytes.ctypes.data

    def word(self, offset: int) -> int:
        return int(self.words[offset >> 3])

    def set_word(self, offset: int, value: int) -> None:
        self.words[offset >> 3] = value

    def wake(self, offset: int) -> None:
        """Wake every process sleeping on the 32-bit futex word at `offset`."""
        _libc.syscall(_SYS_FUTEX, ctypes.c_void_p(self.address + offset), _FUTEX_WAKE,
                      _WAKE_ALL, None, None, 0)

    def sleep(self, offset: int, expected: int, timeout_s: float) -> None:
        """Sleep while the 32-bit word at `offset` is `expected`, at most `timeout_s`.

        Returns early on a wake-up, a signal, or when the word already differs.
        """
        timeout = _Timespec(int(timeout_s), int(timeout_s % 1 * 1e9))
        _libc.syscall(_SYS_FUTEX, ctypes.c_void_p(self.address + offset), _FUTEX_WAIT,
                      ctypes.c_uint32(expected & 0xFFFFFFFF), ctypes.byref(timeout), None, 0)

    def close(self) -> None:
        # The numpy views export the mmap's buffer: drop them before closing it. Views a reader
        # handed out (copy=False) may still be alive: then the mapping goes with the last one.
        del self.bytes, self.words
        try:
            self._mmap.close()
        except BufferError:
            pass


def open_fd(path: os.PathLike | str, writer: bool) -> int:
    """Open a side-channel file: a writer read-write, creating it; a reader read-only."""
    flags = (os.O_RDWR | os.O_CREAT) if writer else os.O_RDONLY
    return os.open(path, flags | os.O_CLOEXEC, 0o644)
