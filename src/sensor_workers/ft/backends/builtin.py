"""Our own Gen0 reader: pyserial for the port set-up, select + os.read for the data path.

The command handshake is a small state machine driven by `read()`, so after the port comes back
the reader reconfigures the sensor without blocking the caller's loop for more than `timeout`.
"""

from collections import deque
import logging
import os
import re
import select
import time

import serial

from sensor_workers.ft import protocol
from sensor_workers.ft.backends.base import BackendError
from sensor_workers.ft.protocol import Frame, FrameParser

log = logging.getLogger(__name__)

ACK_TIMEOUT_S = 0.5
ACK_RETRIES = 3
REOPEN_INTERVAL_S = 0.25


class BuiltinBackend:
    name = 'builtin'

    def __init__(self, port: str, baudrate: int, sinc_length: int) -> None:
        if baudrate not in protocol.BAUD_CODES:
            raise BackendError(f'baudrate {baudrate} not supported by Gen0 sensors; one of '
                               f'{", ".join(map(str, protocol.BAUD_CODES))}')
        self.port = port
        self.baudrate = baudrate
        self.sinc_length = sinc_length
        self.error = ''
        self.generation = 0
        self.parser = FrameParser()
        self._serial: serial.Serial | None = None
        self._fd = -1
        self._frames: deque[Frame] = deque()
        self._rx = bytearray()
        self._script: list[str] = []
        self._sent_at = 0.0
        self._attempts = 0
        self._streaming = False
        self._want_stream = False
        self._next_reopen = 0.0
        self.timeouts = 0
        self.disconnects = 0
        self.reconnects = 0

    # Commands

    def _configure_script(self) -> list[str]:
        return ['C', f'c,0,1,0,{protocol.BAUD_CODES[self.baudrate]}',
                f'f,{self.sinc_length},0,0,1']

    def _run_blocking(self, script: list[str], timeout: float) -> None:
        self._begin(script)
        deadline = time.monotonic() + timeout
        while self._script:
            if self._serial is None:
                raise BackendError(f'{self.port}: {self.error}')
            if time.monotonic() > deadline:
                raise BackendError(f'{self.port}: no answer to {self._script[0]!r} '
                                   f'within {timeout:.1f} s (is it a Bota Gen0 sensor?)')
            self._pump(0.05)

    def _begin(self, script: list[str]) -> None:
        self._script = list(script)
        self._streaming = False
        self._send_next()

    def _send_next(self) -> None:
        self._rx.clear()
        self._attempts += 1
        self._sent_at = time.monotonic()
        self._write((self._script[0] + '\n').encode())

    def _pump(self, timeout: float) -> None:
        """Read command answers for up to `timeout`; advance the script on an ack."""
        data = self._read_bytes(timeout)
        if data is None:
            return
        self._rx += data
        command = self._script[0]
        letter = re.escape(command[0].encode())
        match = re.search(rb'r,(\d+),' + letter + rb',\d+\r?\n?', self._rx)
        if match is None:
            if time.monotonic() - self._sent_at > ACK_TIMEOUT_S:
                if self._attempts >= ACK_RETRIES:
                    self._lose(f'no answer to {command!r}')
                    return
                self._send_next()
            return
        if match.group(1) != b'0':
            self._lose(f'sensor refused {command!r}')
            return
        rest = bytes(self._rx[match.end():])
        self._script.pop(0)
        self._attempts = 0
        if self._script:
            self._send_next()
        elif command == 'R':
            self._streaming = True
            self.parser.reset()
            self._frames.extend(self.parser.feed(rest))

    # Backend interface

    def configure(self) -> None:
        self._open()
        if self._serial is None:
            raise BackendError(f'cannot open {self.port}: {self.error}')
        self._run_blocking(self._configure_script(), ACK_TIMEOUT_S * ACK_RETRIES * 3)

    def start(self, rt_priority: int = 0) -> None:
        # The caller's loop is the only thread that reads: the node sets its priority.
        self._run_blocking(['R'], ACK_TIMEOUT_S * ACK_RETRIES)
        self._want_stream = True

    def stop(self) -> None:
        self._want_stream = False
        self._streaming = False
        self._frames.clear()
        if self._serial is not None:
            try:
                self._run_blocking(['C'], ACK_TIMEOUT_S * ACK_RETRIES)
            except BackendError as error:
                log.warning('stop: %s', error)

    def close(self) -> None:
        self._want_stream = False
        self._streaming = False
        if self._serial is not None:
            try:
                self._serial.close()
            except OSError:
                pass
        self._serial = None
        self._fd = -1

    def read(self, timeout: float) -> Frame | None:
        if self._frames:
            return self._frames.popleft()
        if self._serial is None:
            self._try_reopen(timeout)
            return None
        if not self._streaming:
            if self._script:
                self._pump(timeout)
            else:
                time.sleep(timeout)
            return self._frames.popleft() if self._frames else None
        data = self._read_bytes(timeout)
        if data is None:
            return None
        if not data:
            self.timeouts += 1
            return None
        self._frames.extend(self.parser.feed(data))
        return self._frames.popleft() if self._frames else None

    def counters(self) -> dict[str, int]:
        parser = self.parser
        return {
            'frames': parser.frames,
            'crc_errors': parser.crc_errors,
            'sync_losses': parser.sync_losses,
            'truncated_frames': parser.truncated,
            'skipped_bytes': parser.skipped_bytes,
            'timeouts': self.timeouts,
            'disconnects': self.disconnects,
            'reconnects': self.reconnects,
        }

    # Port handling

    def _open(self) -> None:
        try:
            port = serial.Serial(self.port, self.baudrate, timeout=0, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as error:
            self.error = str(error)
            return
        try:
            port.set_low_latency_mode(True)  # FTDI: 1 ms latency timer instead of 16 ms
        except (OSError, ValueError, AttributeError):
            log.debug('%s: low-latency mode not available', self.port)
        port.reset_input_buffer()
        self._serial = port
        self._fd = port.fileno()
        self.error = ''
        self.generation += 1
        self.parser.reset()

    def _try_reopen(self, timeout: float) -> None:
        now = time.monotonic()
        if now < self._next_reopen:
            time.sleep(min(timeout, self._next_reopen - now))
            return
        self._next_reopen = now + REOPEN_INTERVAL_S
        self._open()
        if self._serial is None:
            time.sleep(min(timeout, REOPEN_INTERVAL_S))
            return
        log.info('%s: port back, reconfiguring the sensor', self.port)
        self.reconnects += 1
        script = self._configure_script() + (['R'] if self._want_stream else [])
        self._begin(script)

    def _read_bytes(self, timeout: float) -> bytes | None:
        """Bytes that arrived within `timeout` (b'' on timeout); None when the port was lost."""
        try:
            readable, _, _ = select.select([self._fd], [], [], timeout)
            if not readable:
                return b''
            data = os.read(self._fd, 4096)
        except OSError as error:
            self._lose(f'read failed: {error}')
            return None
        if not data:
            self._lose('device disconnected')
            return None
        return data

    def _write(self, data: bytes) -> None:
        try:
            os.write(self._fd, data)
        except OSError as error:
            self._lose(f'write failed: {error}')

    def _lose(self, reason: str) -> None:
        """Close the port after an I/O failure; `read()` keeps trying to reopen it."""
        if self._serial is not None:
            log.warning('%s: %s', self.port, reason)
            self.disconnects += 1
        self.error = reason
        want = self._want_stream
        self.close()
        self._want_stream = want
        self._script = []
        self._frames.clear()
        self._next_reopen = time.monotonic() + REOPEN_INTERVAL_S
