"""Image frames for `/ws/image`: decoding ROS encodings, downscaling, JPEG, the binary framing.

Message layout: uint32 little-endian N, N bytes of UTF-8 JSON header, then the payload (JPEG or
raw pixels, rows packed without padding). Pure numpy + simplejpeg; no rclpy.
"""

from dataclasses import dataclass
import json
import math
import struct
from typing import Any

import numpy as np
import simplejpeg

FORMATS = ('jpeg', 'raw')
_LENGTH = struct.Struct('<I')

# encoding -> (numpy dtype, channels)
_LAYOUT = {
    'mono8': (np.uint8, 1), '8uc1': (np.uint8, 1),
    'mono16': (np.uint16, 1), '16uc1': (np.uint16, 1),
    'rgb8': (np.uint8, 3), 'bgr8': (np.uint8, 3), '8uc3': (np.uint8, 3),
    'rgba8': (np.uint8, 4), 'bgra8': (np.uint8, 4), '8uc4': (np.uint8, 4),
    'bayer_rggb8': (np.uint8, 1), 'bayer_bggr8': (np.uint8, 1),
    'bayer_gbrg8': (np.uint8, 1), 'bayer_grbg8': (np.uint8, 1),
    'bayer_rggb16': (np.uint16, 1), 'bayer_bggr16': (np.uint16, 1),
    'bayer_gbrg16': (np.uint16, 1), 'bayer_grbg16': (np.uint16, 1),
}
# Position of R and B in a 2x2 Bayer cell (row, col); the two others are green.
_BAYER_RB = {
    'rggb': ((0, 0), (1, 1)), 'bggr': ((1, 1), (0, 0)),
    'gbrg': ((1, 0), (0, 1)), 'grbg': ((0, 1), (1, 0)),
}


class UnsupportedEncoding(ValueError):
    """The frame's encoding is not one the bridge can convert."""


@dataclass(frozen=True)
class Frame:
    """A frame as received from ROS; `data` is the message's buffer (not copied)."""

    seq: int
    stamp_ns: int
    width: int
    height: int
    encoding: str
    step: int
    data: Any
    is_bigendian: bool = False


@dataclass(frozen=True)
class Variant:
    """One distinct encoding of a frame that some client wants."""

    format: str
    max_width: int  # 0 = full width


@dataclass(frozen=True)
class Encoded:
    """A frame encoded for one variant; shared by every client that wants this variant."""

    seq: int
    stamp_ns: int
    width: int
    height: int
    encoding: str
    format: str
    payload: bytes

    def header(self, dropped: int) -> dict[str, Any]:
        return {'seq': self.seq, 'stamp_ns': self.stamp_ns, 'width': self.width,
                'height': self.height, 'encoding': self.encoding, 'format': self.format,
                'dropped': dropped}

    def message(self, dropped: int) -> bytes:
        return pack(self.header(dropped), self.payload)


def pack(header: dict[str, Any], payload: bytes) -> bytes:
    head = json.dumps(header, separators=(',', ':')).encode()
    return b''.join((_LENGTH.pack(len(head)), head, payload))


def unpack(message: bytes) -> tuple[dict[str, Any], memoryview]:
    """Split a `/ws/image` message into header and payload; raise ValueError if malformed."""
    if len(message) < _LENGTH.size:
        raise ValueError('message shorter than its length prefix')
    (length,) = _LENGTH.unpack_from(message)
    if _LENGTH.size + length > len(message):
        raise ValueError(f'header length {length} exceeds the message')
    try:
        header = json.loads(bytes(message[_LENGTH.size:_LENGTH.size + length]))
    except RecursionError:  # '[[[[...': json's recursion is not a ValueError
        raise ValueError('header nested too deeply') from None
    if not isinstance(header, dict):
        raise ValueError('header is not a JSON object')
    return header, memoryview(message)[_LENGTH.size + length:]


def to_array(frame: Frame) -> np.ndarray:
    """View the frame as an (h, w) or (h, w, c) array without copying when rows are packed."""
    encoding = frame.encoding.lower()
    if encoding not in _LAYOUT:
        raise UnsupportedEncoding(f'unsupported encoding {frame.encoding!r}')
    item_type, channels = _LAYOUT[encoding]
    dtype = np.dtype(item_type).newbyteorder('>' if frame.is_bigendian else '<')
    row_items = frame.width * channels
    buffer = np.frombuffer(frame.data, dtype=np.uint8)
    if frame.step < row_items * dtype.itemsize or buffer.size < frame.step * frame.height:
        raise ValueError(f'{frame.width}x{frame.height} {frame.encoding} does not fit '
                         f'{buffer.size} bytes with step {frame.step}')
    rows = buffer[:frame.step * frame.height].reshape(frame.height, frame.step)
    pixels = rows[:, :row_items * dtype.itemsize].view(dtype)
    shape = (frame.height, frame.width) if channels == 1 else (frame.height, frame.width, channels)
    return pixels.reshape(shape)


def displayable(frame: Frame) -> tuple[np.ndarray, str]:
    """Convert to 8-bit mono, RGB/BGR(A) for display; return (array, encoding).

    Mono16 keeps its upper byte; Bayer is demosaiced by 2x2 binning to a half-size RGB image
    (cheap, and the bridge downscales for browsers anyway).
    """
    encoding = frame.encoding.lower()
    array = to_array(frame)
    if encoding.startswith('bayer_'):
        return _debayer_half(array, encoding[6:10]), 'rgb8'
    if array.dtype.itemsize == 2:
        return (array >> 8).astype(np.uint8), 'mono8'
    return array, {'8uc1': 'mono8', '8uc3': 'bgr8', '8uc4': 'bgra8'}.get(encoding, encoding)


def _debayer_half(array: np.ndarray, pattern: str) -> np.ndarray:
    h, w = array.shape[0] // 2 * 2, array.shape[1] // 2 * 2
    cells = array[:h, :w]
    (ry, rx), (by, bx) = _BAYER_RB[pattern]
    (g1y, g1x), (g2y, g2x) = [(y, x) for y in (0, 1) for x in (0, 1)
                              if (y, x) not in ((ry, rx), (by, bx))]
    shift = 8 if array.dtype.itemsize == 2 else 0
    red = cells[ry::2, rx::2] >> shift
    blue = cells[by::2, bx::2] >> shift
    green = ((cells[g1y::2, g1x::2].astype(np.uint16) >> shift)
             + (cells[g2y::2, g2x::2].astype(np.uint16) >> shift)) >> 1
    return np.dstack((red, green, blue)).astype(np.uint8)


def scale_factor(width: int, max_width: int) -> int:
    """Integer decimation factor that brings `width` to at most `max_width` (1 = none)."""
    if max_width <= 0 or width <= max_width:
        return 1
    return math.ceil(width / max_width)


def is_copy(frame: Frame, variant: Variant) -> bool:
    """Return whether encoding `frame` for `variant` is a plain copy of its pixels."""
    return variant.format == 'raw' and frame.encoding.lower() in _LAYOUT \
        and scale_factor(frame.width, variant.max_width) == 1


def encode(frame: Frame, variant: Variant, quality: int = 80) -> Encoded:
    """Encode `frame` for one variant: downscale first (cheap striding), then JPEG or raw."""
    encoding = frame.encoding.lower()
    if is_copy(frame, variant):
        array = to_array(frame)
        payload = array.astype(array.dtype.newbyteorder('<'), copy=False).tobytes()
        return Encoded(frame.seq, frame.stamp_ns, frame.width, frame.height, encoding, 'raw',
                       payload)
    array, encoding = displayable(frame)
    factor = scale_factor(array.shape[1], variant.max_width)
    if factor > 1:
        array = array[::factor, ::factor]
    height, width = array.shape[:2]
    if variant.format == 'raw':
        payload = np.ascontiguousarray(array).tobytes()
    else:
        payload = _jpeg(array, encoding, quality)
    return Encoded(frame.seq, frame.stamp_ns, width, height, encoding, variant.format, payload)


def _jpeg(array: np.ndarray, encoding: str, quality: int) -> bytes:
    if array.ndim == 2:
        return simplejpeg.encode_jpeg(np.ascontiguousarray(array[:, :, None]), quality=quality,
                                      colorspace='GRAY', colorsubsampling='Gray')
    colorspace = {'rgb8': 'RGB', 'bgr8': 'BGR', 'rgba8': 'RGBA', 'bgra8': 'BGRA'}[encoding]
    return simplejpeg.encode_jpeg(np.ascontiguousarray(array), quality=quality,
                                  colorspace=colorspace, colorsubsampling='420')
