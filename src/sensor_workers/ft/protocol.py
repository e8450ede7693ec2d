"""Bota Gen0 serial protocol: CRC, 37-byte frames, a resyncing stream parser, timestamp unwrap.

Pure Python, no ROS and no I/O, so the simulator, the reader and the unit tests share it.

A run-mode frame is 37 bytes, little-endian: header 0xAA; uint16 status; 6 x float32 Fx Fy Fz
Mx My Mz; uint32 timestamp in microseconds (wraps after ~71.6 min); float32 temperature; uint16
CRC-16/X-25 over the 34 bytes between header and CRC.
"""

from dataclasses import dataclass
import struct

HEADER = 0xAA
FRAME_SIZE = 37
PAYLOAD = struct.Struct('<H6fIf')  # the 34 bytes the CRC covers
CRC = struct.Struct('<H')
BASE_RATE_HZ = 51200.0
TIMESTAMP_MODULUS = 1 << 32

# Status bits.
THROTTLED = 1 << 0
OVERRANGE = 1 << 1
INVALID = 1 << 2
RAW = 1 << 3
STATUS_NAMES = {THROTTLED: 'throttled', OVERRANGE: 'overrange', INVALID: 'invalid', RAW: 'raw'}

# Baud rate codes of the `c` command, as the public Gen0 drivers use them.
BAUD_CODES = {9600: 0, 57600: 1, 115200: 2, 230400: 3, 460800: 4}


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc_table()


def crc16_x25(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/X-25: reflected polynomial 0x8408, init 0xFFFF, xorout 0xFFFF (check 0x906E)."""
    crc = 0xFFFF
    table = _TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFF


def sample_period_s(sinc_length: int) -> float:
    """Sample period of a Gen0 sensor: sinc_length / 51200 s (51 -> ~1 kHz, 64 -> 800 Hz)."""
    return sinc_length / BASE_RATE_HZ


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded sample; `wrench` is (Fx, Fy, Fz, Mx, My, Mz) in N and Nm."""

    status: int
    wrench: tuple[float, float, float, float, float, float]
    timestamp_us: int
    temperature: float

    def flags(self) -> list[str]:
        """Names of the status bits that are set."""
        return [name for bit, name in STATUS_NAMES.items() if self.status & bit]


def encode_frame(
    wrench: tuple[float, ...], timestamp_us: int, temperature: float, status: int = 0
) -> bytes:
    """Return the 37 bytes of a frame (the timestamp is taken modulo 2**32)."""
    payload = PAYLOAD.pack(status, *wrench, timestamp_us % TIMESTAMP_MODULUS, temperature)
    return bytes((HEADER,)) + payload + CRC.pack(crc16_x25(payload))


def decode_frame(data: bytes | bytearray | memoryview) -> Frame:
    """Decode one complete frame; raise ValueError on a bad header, length or CRC."""
    if len(data) != FRAME_SIZE:
        raise ValueError(f'frame is {len(data)} bytes, not {FRAME_SIZE}')
    if data[0] != HEADER:
        raise ValueError(f'bad header 0x{data[0]:02x}')
    payload = bytes(data[1:35])
    (crc,) = CRC.unpack_from(data, 35)
    if crc != crc16_x25(payload):
        raise ValueError('CRC mismatch')
    return _frame_from_payload(payload)


def _frame_from_payload(payload: bytes) -> Frame:
    status, fx, fy, fz, mx, my, mz, timestamp, temperature = PAYLOAD.unpack(payload)
    return Frame(status, (fx, fy, fz, mx, my, mz), timestamp, temperature)


class FrameParser:
    """Streaming frame parser that resyncs by sliding one byte at a time.

    Counters (cumulative):
    - `frames`: valid frames returned.
    - `sync_losses`: times the parser was in sync and the next frame did not check out (garbage
      between frames, a bad CRC, a truncated frame). Finding the first frame is not a loss.
    - `crc_errors`: of those, the ones where a header stood where the next frame was due but the
      CRC did not match (a corrupted or a truncated frame).
    - `truncated`: of the CRC errors, the ones where the next valid frame started less than a
      frame length after the failed one (the failed frame was cut short).
    - `skipped_bytes`: bytes discarded while looking for a frame.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.in_sync = False
        self.frames = 0
        self.sync_losses = 0
        self.crc_errors = 0
        self.truncated = 0
        self.skipped_bytes = 0
        # Bytes skipped since a CRC failure at a frame boundary, or None when there was none.
        self._since_crc_failure: int | None = None

    def reset(self) -> None:
        """Drop buffered bytes and the sync state (keeps the counters), e.g. after a reopen."""
        self._buffer.clear()
        self.in_sync = False
        self._since_crc_failure = None

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return the complete frames they finish, in order."""
        buffer = self._buffer
        buffer += data
        frames = []
        start = 0
        end = len(buffer)
        while end - start >= FRAME_SIZE:
            if buffer[start] == HEADER:
                payload = bytes(buffer[start + 1:start + 35])
                if buffer[start + 35] | buffer[start + 36] << 8 == crc16_x25(payload):
                    frames.append(_frame_from_payload(payload))
                    self._on_frame()
                    start += FRAME_SIZE
                    continue
                if self.in_sync:
                    self.crc_errors += 1
                    self._since_crc_failure = 0
            self._lose_sync()
            # Slide: skip this byte and everything up to the next header candidate.
            found = buffer.find(HEADER, start + 1, end)
            skip = (found if found >= 0 else end) - start
            self.skipped_bytes += skip
            if self._since_crc_failure is not None:
                self._since_crc_failure += skip
            start += skip
        del buffer[:start]
        return frames

    def _lose_sync(self) -> None:
        if self.in_sync:
            self.sync_losses += 1
            self.in_sync = False

    def _on_frame(self) -> None:
        if self._since_crc_failure is not None and self._since_crc_failure < FRAME_SIZE:
            self.truncated += 1
        self._since_crc_failure = None
        self.in_sync = True
        self.frames += 1


class TimestampUnwrapper:
    """Turn the sensor's wrapping uint32 microsecond timestamps into a monotonic int64."""

    def __init__(self) -> None:
        self._last: int | None = None
        self._offset = 0

    def reset(self) -> None:
        self._last = None
        self._offset = 0

    def unwrap(self, timestamp_us: int) -> int:
        if self._last is not None:
            delta = (timestamp_us - self._last) % TIMESTAMP_MODULUS
            if timestamp_us < self._last and delta < TIMESTAMP_MODULUS // 2:
                self._offset += TIMESTAMP_MODULUS  # wrapped forwards
        self._last = timestamp_us
        return timestamp_us + self._offset
