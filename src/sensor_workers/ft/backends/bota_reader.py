"""The bota_driver reader process: Bota's driver alone in a process, with one Python thread.

The driver holds the GIL while `read_frame_blocking` waits for the next frame and for the 3.5 s
of its constructor. In the worker's process that stopped the executor, the heartbeat and the
loop's own publishing, and each GIL hand-over made the loop come back late: at 800 Hz under a
CPU hog per core the driver then skipped frames ("reading function called too slow"). Here
nothing else wants the GIL: the process reads, writes each frame into a pipe, and reads again.
The pipe buffers what the worker has not read yet (as a serial port's kernel buffer does for the
builtin backend), so a late worker costs latency, not frames.

The pipes, both ways:
- commands on stdin, one byte each: `START` (followed by a byte: the SCHED_FIFO priority for
  every thread of the process, the driver's serial thread included; 0: normal scheduling),
  `STOP`, `QUIT` (end of file quits too);
- records on the pipe `--records-fd` names (stdout is the driver's log): a `HEADER` (kind,
  payload length) and its payload. `READY` once the driver is configured (or `FAILED` with the
  reason, and the process exits); `STARTED` or `FAILED` for `START`, `STOPPED` for `STOP`;
  `FRAME` for every new frame, with the driver's generation and the session's counters; `ERROR`
  with the reason when the session loses the sensor.

Run with `--start` the process starts streaming right after `READY`: the worker's backend uses
that to replace a reader that died while streaming, without waiting for it.

The process ends with its worker through the pipes, whichever thread of the worker started it
(a parent-death signal would follow that thread): the commands reach end of file, which it looks
at between two reads (within `READ_TIMEOUT_S`, or once a driver constructor's 3 s are over), and
a write to a gone worker fails. It ignores SIGINT: a Ctrl-C reaches the worker, which quits it.
"""

import argparse
from enum import IntEnum
import logging
import os
import select
import signal
import struct
import sys

from sensor_workers.ft.backends.base import BackendError
from sensor_workers.ft.backends.bota_session import COUNTER_NAMES, BotaDriverSession
from sensor_workers.ft.protocol import Frame

log = logging.getLogger(__name__)

START, STOP, QUIT = b'a', b'd', b'q'
HEADER = struct.Struct('<BH')
# status, force and torque, timestamp (us), temperature, driver generation, counters
FRAME = struct.Struct(f'<I6dIdI{len(COUNTER_NAMES)}Q')
READ_TIMEOUT_S = 0.1  # how long a read may wait for a lost sensor before commands are looked at


class Kind(IntEnum):
    READY = 1
    FAILED = 2
    STARTED = 3
    STOPPED = 4
    FRAME = 5
    ERROR = 6


def encode(kind: Kind, payload: bytes = b'') -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def encode_frame(frame: Frame, generation: int, counters: dict[str, int]) -> bytes:
    return encode(Kind.FRAME, FRAME.pack(
        frame.status, *frame.wrench, frame.timestamp_us, frame.temperature, generation,
        *(counters[name] for name in COUNTER_NAMES)))


def decode_frame(payload: bytes) -> tuple[Frame, int, dict[str, int]]:
    """Return the frame, the driver generation and the counters of a FRAME payload."""
    fields = FRAME.unpack(payload)
    frame = Frame(fields[0], fields[1:7], fields[7], fields[8])
    return frame, fields[9], dict(zip(COUNTER_NAMES, fields[10:], strict=True))


def take_records(buffer: bytearray) -> list[tuple[Kind, bytes]]:
    """Remove the whole records at the front of `buffer` and return them."""
    records, offset = [], 0
    while len(buffer) - offset >= HEADER.size:
        kind, length = HEADER.unpack_from(buffer, offset)
        end = offset + HEADER.size + length
        if end > len(buffer):
            break
        records.append((Kind(kind), bytes(buffer[offset + HEADER.size:end])))
        offset = end
    del buffer[:offset]
    return records


class Reader:
    """Serves the commands on `commands` and streams records into `records` (file descriptors)."""

    def __init__(self, session: BotaDriverSession, commands: int, records: int) -> None:
        self.session = session
        self.commands = commands
        self.records = records
        self.streaming = False
        self.rt_priority = 0
        self._error = ''

    def send(self, kind: Kind, payload: bytes = b'') -> None:
        os.write(self.records, encode(kind, payload))

    def serve(self) -> None:
        """Run until QUIT or the end of the commands; a write to a gone worker ends it too."""
        while True:
            if not self.streaming or select.select([self.commands], [], [], 0)[0]:
                command = os.read(self.commands, 1)
                if command in (b'', QUIT):
                    return
                if command == START:
                    self.rt_priority = os.read(self.commands, 1)[0]
                self.handle(command)
                continue
            self.stream_one()

    def handle(self, command: bytes) -> None:
        if command == START:
            set_priority(self.rt_priority)
            try:
                self.session.start()
            except BackendError as error:
                self.send(Kind.FAILED, str(error).encode())
                return
            self.streaming = True
            self.send(Kind.STARTED)
        elif command == STOP:
            self.streaming = False
            self.session.stop()
            self.send(Kind.STOPPED)
        else:
            log.warning('unknown command %r', command)

    def stream_one(self) -> None:
        frame = self.session.read(READ_TIMEOUT_S)
        error = self.session.error
        if error and error != self._error:
            self.send(Kind.ERROR, error.encode())
        self._error = error
        if frame is not None:
            os.write(self.records, encode_frame(frame, self.session.generation,
                                                self.session.counters()))


def set_priority(rt_priority: int) -> None:
    """Schedule every thread of this process with SCHED_FIFO `rt_priority` (0: normal)."""
    if not rt_priority and os.sched_getscheduler(0) == os.SCHED_OTHER:
        return  # nothing to undo
    policy = os.SCHED_FIFO if rt_priority else os.SCHED_OTHER
    try:
        for thread in os.listdir('/proc/self/task'):
            os.sched_setscheduler(int(thread), policy, os.sched_param(rt_priority))
    except OSError as error:
        log.warning('rt_priority %d refused (%s): the driver reads with normal priority',
                    rt_priority, error)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--port', required=True)
    parser.add_argument('--baudrate', type=int, required=True)
    parser.add_argument('--sinc-length', type=int, required=True)
    parser.add_argument('--records-fd', type=int, required=True,
                        help='the write end of the records pipe (inherited)')
    parser.add_argument('--start', action='store_true', help='stream right after READY')
    parser.add_argument('--rt-priority', type=int, default=0, help='for --start')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='bota_reader: %(message)s')
    session = BotaDriverSession(args.port, args.baudrate, args.sinc_length)
    reader = Reader(session, commands=sys.stdin.fileno(), records=args.records_fd)
    try:
        session.configure()
    except BackendError as error:
        reader.send(Kind.FAILED, str(error).encode())
        return 1
    try:
        reader.send(Kind.READY)
        if args.start:
            reader.rt_priority = args.rt_priority
            reader.handle(START)
            if not reader.streaming:
                return 1
        reader.serve()
    except BrokenPipeError:
        pass  # the worker is gone
    finally:
        session.close()
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
