"""The file layout of a camera's shared-memory side channel, and its name.

One file per camera in /dev/shm, `sensor_workers_frames.d<domain>.<node name, '/' -> '.'>`
(e.g. `sensor_workers_frames.d0.camera` for `/camera` in ROS domain 0; ROS names never contain
a dot, so two cameras or two domains never share a file). Little endian, fixed offsets:

    header (one page)
      0  magic       8s   b'SWFRAMES'
      8  version     u32  1
     12  slot_count  u32
     16  slot_size   u64  bytes per slot, its 64-byte slot header included (page multiple)
     24  generation  u64  +1 whenever a writer (re)starts on the file or changes the layout
     32  writer_pid  u32
     40  latest      u64  sequence number of the newest complete frame (0: none yet); its low
                          32 bits are the futex word readers sleep on
    slot k at PAGE + k * slot_size, holding frame `seq` when (seq - 1) % slot_count == k
      0  begin       u64  seq, written before the pixels
      8  end         u64  seq, written after them
     16  stamp_ns    u64  header.stamp of the matching sensor_msgs/Image
     24  width, height, step  u32 x 3
     36  is_bigendian u8
     40  size        u64  bytes of pixels
     48  encoding    16s  sensor_msgs/Image encoding, NUL padded
     64  pixels

A seqlock per slot, two words: the writer stores `begin`, the pixels, then `end`; a reader that
finds `end == seq`, copies, then still finds `begin == seq` (and the same generation) has an
untorn frame. Stores and loads keep program order on x86-64 (TSO), the only platform the ROS
wheels exist for; glibc's large copies end with an `sfence` after their non-temporal stores.
"""

import os
from pathlib import Path
import struct

SHM_DIR = Path('/dev/shm')
PREFIX = 'sensor_workers_frames.'
MAGIC = b'SWFRAMES'
VERSION = 1
PAGE = 4096
SLOT_HEADER = 64
DEFAULT_SLOTS = 8

HEADER = struct.Struct('<8sIIQQI4xQ')  # magic .. latest
LAYOUT = struct.Struct('<8sIIQ')  # magic .. slot_size
GENERATION_AT = 24
WRITER_PID_AT = 32
LATEST_AT = 40
SLOT_BEGIN_AT = 0
SLOT_END_AT = 8
SLOT_FIELDS_AT = 16
SLOT_FIELDS = struct.Struct('<QIIIB3xQ16s')  # stamp_ns .. encoding


def channel_name(domain_id: int, node_name: str) -> str:
    """Return the file name of the side channel of the node `node_name` (fully qualified)."""
    return f'{PREFIX}d{domain_id}{node_name.replace("/", ".")}'


def channel_path(domain_id: int, node_name: str, directory: Path = SHM_DIR) -> Path:
    return directory / channel_name(domain_id, node_name)


def domain_id_from_environment() -> int:
    """Return ROS_DOMAIN_ID as ROS reads it ('' or unset: 0)."""
    return int(os.environ.get('ROS_DOMAIN_ID') or 0)


def slot_size_for(frame_bytes: int) -> int:
    """Bytes per slot for frames of up to `frame_bytes`: header and pixels, whole pages."""
    return -(-(SLOT_HEADER + frame_bytes) // PAGE) * PAGE


def file_size(slot_count: int, slot_size: int) -> int:
    return PAGE + slot_count * slot_size


def slot_offset(seq: int, slot_count: int, slot_size: int) -> int:
    """Return where the slot of frame `seq` (1, 2, ...) starts."""
    return PAGE + (seq - 1) % slot_count * slot_size
