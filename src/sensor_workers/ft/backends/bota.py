"""The `bota_driver` backend: Bota's official driver, run in a reader process of its own.

The driver keeps the GIL while it waits for a frame and for the 3.5 s of its constructor
(bota_session.py), so in the worker's process it stopped every other thread and made the loop
late enough for the driver to skip frames. The reader process (bota_reader.py) runs it with one
Python thread and writes every frame into a pipe; this backend reads that pipe with `select` and
`os.read`, without the GIL, as the builtin backend reads a serial port.

A reader that dies (a crash in the driver, a kill) is replaced while the worker streams, at most
once per `RESPAWN_INTERVAL_S`; the worker reports the sensor lost meanwhile and keeps its
heartbeat. The counters add up over the readers (`reader_exits` counts the replaced ones).
"""

from collections import deque
import fcntl
import logging
import os
import select
import subprocess
import sys
import time

from sensor_workers.ft.backends.base import BackendError
from sensor_workers.ft.backends.bota_reader import (
    QUIT,
    START,
    STOP,
    Kind,
    decode_frame,
    take_records,
)
from sensor_workers.ft.backends.bota_session import COUNTER_NAMES, check_sinc_length
from sensor_workers.ft.protocol import Frame

log = logging.getLogger(__name__)

READER_MODULE = 'sensor_workers.ft.backends.bota_reader'
CONFIGURE_TIMEOUT_S = 15.0  # Python and its imports, then the driver's constructor (3 s)
COMMAND_TIMEOUT_S = 5.0
RESPAWN_INTERVAL_S = 1.0
# The pipe holds what the worker has not read yet: ~10 s of 800 Hz frames.
PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031


class BotaDriverBackend:
    name = 'bota_driver'

    def __init__(self, port: str, baudrate: int, sinc_length: int) -> None:
        check_sinc_length(sinc_length)
        self.port = port
        self._reader = [sys.executable, '-m', READER_MODULE, '--port', port,
                        '--baudrate', str(baudrate), '--sinc-length', str(sinc_length)]
        self.error = ''
        self.generation = 0
        self.reader_exits = 0
        self._process: subprocess.Popen | None = None
        self._records_fd: int | None = None  # the read end of the current reader's records
        self._buffer = bytearray()
        self._records: deque[tuple[Kind, bytes]] = deque()
        self._streaming = False
        self._rt_priority = 0
        self._reader_generation: int | None = None
        # Why the current reader said it failed, for the error its exit leaves.
        self._failure = ''
        self._next_respawn = 0.0
        self._counters = dict.fromkeys(COUNTER_NAMES, 0)  # the current reader's
        self._earlier = dict.fromkeys(COUNTER_NAMES, 0)  # the sum of the readers before it

    def configure(self) -> None:
        self._spawn(start=False)
        try:
            self._expect(Kind.READY, CONFIGURE_TIMEOUT_S, 'configure')
        except BackendError:
            self.close()
            raise

    def start(self, rt_priority: int = 0) -> None:
        if self._process is None:  # the reader died while the node was inactive
            self.configure()
        self._rt_priority = rt_priority
        self._command(START + bytes([rt_priority]))
        self._expect(Kind.STARTED, COMMAND_TIMEOUT_S, 'activate')
        self._streaming = True

    def stop(self) -> None:
        self._streaming = False
        if self._process is not None:
            self._command(STOP)
            self._expect(Kind.STOPPED, COMMAND_TIMEOUT_S, 'deactivate')

    def close(self) -> None:
        self._streaming = False
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None
        try:
            process.stdin.write(QUIT)
            process.stdin.close()
        except BrokenPipeError:
            pass
        try:
            process.wait(COMMAND_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning('%s: the bota_driver reader did not quit; killing it', self.port)
            process.kill()
            process.wait()
        self._close_records()
        self._retire_reader()

    def read(self, timeout: float) -> Frame | None:
        deadline = time.monotonic() + timeout
        if self._process is None:
            self._respawn_when_due()
        while (record := self._next_record(deadline)) is not None:
            kind, payload = record
            if kind == Kind.FRAME:
                return self._take_frame(payload)
            if kind in (Kind.ERROR, Kind.FAILED):
                self.error = payload.decode(errors='replace')
            if kind == Kind.FAILED:
                self._failure = self.error
        return None

    def counters(self) -> dict[str, int]:
        totals = {name: self._earlier[name] + self._counters[name] for name in COUNTER_NAMES}
        return {**totals, 'reader_exits': self.reader_exits}

    def _take_frame(self, payload: bytes) -> Frame:
        frame, reader_generation, self._counters = decode_frame(payload)
        if reader_generation != self._reader_generation:
            self._reader_generation = reader_generation
            self.generation += 1  # a new driver: its sensor clock starts again
        self.error = ''
        return frame

    def _spawn(self, start: bool) -> None:
        records_fd, write_fd = os.pipe()
        try:
            fcntl.fcntl(records_fd, _F_SETPIPE_SZ, PIPE_SIZE)
        except OSError as error:  # above /proc/sys/fs/pipe-max-size: the default 64 KiB stays
            log.warning('%s: reader pipe stays at its default size (%s)', self.port, error)
        command = [*self._reader, '--records-fd', str(write_fd),
                   '--rt-priority', str(self._rt_priority)]
        try:
            self._process = subprocess.Popen(  # noqa: S603 our own interpreter and module
                command + (['--start'] if start else []), stdin=subprocess.PIPE, bufsize=0,
                pass_fds=(write_fd,))
        except OSError:
            os.close(records_fd)
            raise
        finally:
            os.close(write_fd)
        self._records_fd = records_fd
        self._buffer.clear()
        self._records.clear()
        self._reader_generation = None
        self._failure = ''
        self._counters = dict.fromkeys(COUNTER_NAMES, 0)

    def _respawn_when_due(self) -> None:
        now = time.monotonic()
        if not self._streaming or now < self._next_respawn:
            return
        self._next_respawn = now + RESPAWN_INTERVAL_S
        self._spawn(start=True)

    def _command(self, command: bytes) -> None:
        assert self._process is not None and self._process.stdin is not None
        try:
            self._process.stdin.write(command)
        except BrokenPipeError:
            self._reader_exited()
            raise BackendError(f'bota_driver on {self.port}: the reader process is gone') from None

    def _expect(self, wanted: Kind, timeout: float, what: str) -> None:
        """Read records until `wanted`; raise BackendError on FAILED, an exit or `timeout`."""
        deadline = time.monotonic() + timeout
        while (record := self._next_record(deadline)) is not None:
            kind, payload = record
            if kind == wanted:
                return
            if kind == Kind.FAILED:
                raise BackendError(payload.decode(errors='replace'))
            if kind == Kind.FRAME:
                self._take_frame(payload)  # frames sent before the answer: counted, not used
            elif kind == Kind.ERROR:
                self.error = payload.decode(errors='replace')
        if self._process is None:
            raise BackendError(f'bota_driver on {self.port}: the reader process exited ({what})')
        raise BackendError(f'bota_driver on {self.port}: no answer to {what} in {timeout:.0f} s')

    def _next_record(self, deadline: float) -> tuple[Kind, bytes] | None:
        """Return the next record, or None at `deadline` or when the reader has exited."""
        while not self._records:
            fd = self._records_fd
            if fd is None:
                return None
            if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                return None
            data = os.read(fd, PIPE_SIZE)
            if not data:
                self._reader_exited()
                return None
            self._buffer += data
            self._records.extend(take_records(self._buffer))
        return self._records.popleft()

    def _reader_exited(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        code = process.wait()
        assert process.stdin is not None
        process.stdin.close()
        self._close_records()
        self.reader_exits += 1
        self.error = f'the bota_driver reader exited with code {code}' + (
            f' ({self._failure})' if self._failure else '')
        log.warning('%s: %s', self.port, self.error)
        self._retire_reader()

    def _close_records(self) -> None:
        if self._records_fd is not None:
            os.close(self._records_fd)
            self._records_fd = None

    def _retire_reader(self) -> None:
        for name in COUNTER_NAMES:
            self._earlier[name] += self._counters[name]
        self._counters = dict.fromkeys(COUNTER_NAMES, 0)
