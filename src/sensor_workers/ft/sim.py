"""Simulated Bota Gen0 serial F/T sensor on a pseudo-terminal (`bota_sim`).

It answers the ASCII commands of the Gen0 protocol (`C`, `R`, `c,...`, `f,...`, `b,...`, `s`, `w`,
`p?`) with `r,0,<cmd>,0` acks and, in run mode, writes a 37-byte frame every sinc/51200 s. Frames
are scheduled against absolute deadlines on the monotonic clock, so there is no drift; if the
simulator wakes late it writes the frames that fell due at once, as a sensor behind a USB adapter
would. The sample counter advances with time whether frames are sent or not (config mode, stall,
unread port), like a sensor's clock.

Every sample is a deterministic function of its counter (`wrench_for`), and the counter can be
recovered from the values (`counter_from_wrench`), so a subscriber can check for gaps and compare
values exactly. The frame timestamp is `counter * period` in microseconds (uint32, wraps).

Faults are injected from the command line (`--fault`, repeatable, applied after `--fault-delay`),
from Python (`BotaSimulator.inject`) or into a running process through its control socket
(`--control PATH`, see `send_control`). Fault commands:
  garbage N        N garbage bytes (never 0xAA) before the next frame
  badcrc N         the next N frames carry a wrong CRC
  truncate N [K]   the next N frames are cut to their first K bytes (default 20)
  flags NAMES [N]  set status bits (throttled,overrange,invalid,raw or none) for N frames
                   (default: until `flags none`)
  stall MS         send nothing for MS milliseconds (the samples of that time are lost)
  reopen MS        close the port, and after MS milliseconds open a new pseudo-terminal (the
                   `--link` symlink then points to the new one), like a USB replug
"""

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
import errno
import logging
import math
import os
from pathlib import Path
import queue
import random
import select
import shutil
import signal
import socket
import struct
import sys
import threading
import time
import tty
from types import FrameType

from sensor_workers.ft import protocol
from sensor_workers.lifetime import die_with_parent

log = logging.getLogger(__name__)

SERIAL_NUMBER = '0421'
PRODUCT_NAME = 'BFT-SENS-SER-M8'
COUNTER_CODE_MODULUS = 1_000_000
COUNTER_CODE_SCALE = 1e-6
FAULTS = ('garbage', 'badcrc', 'truncate', 'flags', 'stall', 'reopen')
_FLOAT32 = struct.Struct('<6f')


def wrench_for(counter: int) -> tuple[float, float, float, float, float, float]:
    """Return the wrench of sample `counter` as float32 values (what a frame carries).

    Plausible slow sinusoids on a -20 N load, except Mz, a sawtooth that encodes the counter.
    """
    tau = 2.0 * math.pi
    values = (
        2.0 * math.sin(tau * counter / 500.0),
        1.5 * math.cos(tau * counter / 700.0),
        -20.0 + 0.5 * math.sin(tau * counter / 300.0),
        0.1 * math.sin(tau * counter / 450.0),
        0.1 * math.cos(tau * counter / 550.0),
        (counter % COUNTER_CODE_MODULUS) * COUNTER_CODE_SCALE,
    )
    return _FLOAT32.unpack(_FLOAT32.pack(*values))


def counter_from_wrench(wrench: Sequence[float]) -> int:
    """Recover `counter % 1000000` from an untared wrench produced by `wrench_for`."""
    return round(wrench[5] / COUNTER_CODE_SCALE) % COUNTER_CODE_MODULUS


def temperature_for(counter: int) -> float:
    return 35.0 + 0.2 * math.sin(2.0 * math.pi * counter / 60000.0)


def parse_fault(text: str) -> tuple[str, list[str]]:
    """Split and check a fault command such as `badcrc 3`; raise ValueError if malformed."""
    words = text.split()
    if not words or words[0] not in FAULTS:
        raise ValueError(f'unknown fault {text!r}; one of {", ".join(FAULTS)}')
    name, args = words[0], words[1:]
    if name == 'flags':
        if not args:
            raise ValueError('flags needs names, e.g. `flags overrange 10`')
        _flag_bits(args[0])
        if len(args) > 1:
            int(args[1])
    else:
        if not args and name not in ('truncate',):
            raise ValueError(f'{name} needs a number')
        [int(a) for a in args]
    return name, args


def _flag_bits(names: str) -> int:
    by_name = {v: k for k, v in protocol.STATUS_NAMES.items()}
    bits = 0
    for name in names.split(','):
        if name == 'none':
            continue
        if name not in by_name:
            raise ValueError(f'unknown status flag {name!r}')
        bits |= by_name[name]
    return bits


def send_control(path: str | Path, command: str) -> None:
    """Send a fault command to a running simulator's control socket."""
    parse_fault(command)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(command.encode(), str(path))


@dataclass
class SimStats:
    frames_sent: int = 0
    frames_dropped: int = 0  # counter values that fell due but were not written
    commands: int = 0


class BotaSimulator:
    """A simulated Gen0 sensor; use `start()`/`stop()` in-process or `run()` in its own process."""

    def __init__(
        self,
        sinc_length: int = 64,
        link: str | Path | None = None,
        control: str | Path | None = None,
        boot_mode: str = 'run',
        start_counter: int = 0,
        seed: int = 0,
        announce: Callable[[str], None] | None = None,
    ) -> None:
        self.sinc_length = sinc_length
        self.link = Path(link) if link else None
        self.control_path = Path(control) if control else None
        self.running_mode = boot_mode == 'run'
        self._boot_mode = boot_mode
        self.stats = SimStats()
        self.commands: list[str] = []
        self._announce = announce or (lambda line: log.info('%s', line))
        self._random = random.Random(seed)
        self._faults: queue.SimpleQueue[tuple[str, list[str]]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        # A plain flag, not an Event: the signal handler sets it, and a handler must take no
        # lock (a second SIGTERM during Event.set() deadlocked the simulator for good).
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._master = -1
        self._slave = -1
        self.port = ''
        self._rx = bytearray()
        self._control_sock: socket.socket | None = None
        # Timing: counter c falls due at t_base + (c - c_base) * period.
        self._c_base = start_counter
        self._t_base = time.monotonic_ns()
        self.epoch_realtime_ns = time.time_ns()
        self._next_counter = start_counter
        # Pending faults.
        self._garbage = 0
        self._badcrc = 0
        self._truncate = 0
        self._truncate_len = 20
        self._flags = 0
        self._flag_frames = -1
        self._stall_until = 0
        self._reopen_at = 0

    # Timing

    def period_ns(self) -> float:
        return self.sinc_length * 1e9 / protocol.BASE_RATE_HZ

    def _due_ns(self, counter: int) -> int:
        return self._t_base + (counter - self._c_base) * self.sinc_length * 10**9 // 51200

    def _counter_at(self, t_ns: int) -> int:
        return self._c_base + (t_ns - self._t_base) * 51200 // (self.sinc_length * 10**9)

    def timestamp_us(self, counter: int) -> int:
        """Return the timestamp of `counter`: counter * period in us (while sinc is unchanged)."""
        return counter * self.sinc_length * 10**6 // 51200

    def realtime_due_ns(self, counter: int) -> int:
        """Wall-clock time at which `counter` was due to be written (for latency figures)."""
        return self.epoch_realtime_ns + self._due_ns(counter) - self._t_base

    # Life cycle

    def open(self) -> str:
        """Create the pseudo-terminal (and symlink, control socket); return the port path."""
        self._open_pty()
        if self.control_path is not None:
            self.control_path.unlink(missing_ok=True)
            self._control_sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._control_sock.bind(str(self.control_path))
            self._control_sock.setblocking(False)
        return self.port

    def start(self) -> str:
        """Open and serve in a background thread; return the port path."""
        port = self.open()
        self._thread = threading.Thread(target=self.serve, name='bota-sim', daemon=True)
        self._thread.start()
        return port

    def stop(self) -> None:
        self._stopping = True
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self._close_pty()
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()
        if self._control_sock is not None:
            self._control_sock.close()
            self._control_sock = None
            if self.control_path is not None:
                self.control_path.unlink(missing_ok=True)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_r = self._wake_w = -1

    def __enter__(self) -> 'BotaSimulator':
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject(self, command: str) -> None:
        """Queue a fault command (see the module docstring); thread-safe."""
        self._faults.put(parse_fault(command))
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b'x')
        except (BlockingIOError, OSError):
            pass

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.port = os.ttyname(slave)
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + '.tmp')
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self.port)
            os.replace(tmp, self.link)
        self._rx.clear()
        self.running_mode = self._boot_mode == 'run'
        self._next_counter = self._counter_at(time.monotonic_ns()) + 1
        self._write(f'BOTA Gen0 F/T sensor simulator {PRODUCT_NAME} SN{SERIAL_NUMBER}\r\n'
                    f'sinc {self.sinc_length}\r\n'.encode())

    def _close_pty(self) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    # The loop

    def serve(self) -> None:
        """Serve commands and frames until `stop()`."""
        while not self._stopping:
            now = time.monotonic_ns()
            self._apply_faults(now)
            if self._reopen_at:
                if now >= self._reopen_at:
                    self._reopen_at = 0
                    self._open_pty()
                    self._announce(f'reopened: {self.port}')
                    continue
                timeout_ns = self._reopen_at - now
            elif self.running_mode:
                self._send_due(now)
                timeout_ns = self._due_ns(self._next_counter) - time.monotonic_ns()
            else:
                timeout_ns = 50_000_000
            fds: list[int | socket.socket] = [self._wake_r]
            if self._master >= 0:
                fds.append(self._master)
            if self._control_sock is not None:
                fds.append(self._control_sock)
            readable, _, _ = select.select(fds, [], [], max(0.0, min(timeout_ns, 5e7) / 1e9))
            if self._wake_r in readable:
                os.read(self._wake_r, 4096)
            if self._control_sock is not None and self._control_sock in readable:
                self._read_control(self._control_sock)
            if self._master >= 0 and self._master in readable:
                self._read_commands()

    def stop_on_signals(self) -> None:
        """Make SIGINT/SIGTERM end `run()`, also when they come before it (the console script).

        Installed before `open()`: a SIGTERM between the link appearing and the serving loop
        used to kill the simulator with the default action, leaving its link and run directory.
        """
        def on_signal(signum: int, frame: FrameType | None) -> None:
            self._stopping = True
            self._wake()
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def run(self) -> None:
        """Serve in this thread until stopped (see `stop_on_signals`)."""
        try:
            self.serve()
        finally:
            self.stop()

    def _send_due(self, now: int) -> None:
        due = self._counter_at(now)
        if due < self._next_counter:
            return
        if now < self._stall_until:
            self.stats.frames_dropped += due + 1 - self._next_counter
            self._next_counter = due + 1
            return
        chunks = []
        for counter in range(self._next_counter, due + 1):
            chunks.append(self._frame_bytes(counter))
        self._next_counter = due + 1
        data = b''.join(chunks)
        written = self._write(data)
        if written < len(data):
            self.stats.frames_dropped += (len(data) - written) // protocol.FRAME_SIZE
        self.stats.frames_sent += len(chunks)

    def _frame_bytes(self, counter: int) -> bytes:
        prefix = b''
        if self._garbage:
            prefix = bytes(self._random.choice(range(0, 0xAA)) for _ in range(self._garbage))
            self._garbage = 0
        status = self._flags
        if self._flag_frames > 0:
            self._flag_frames -= 1
            if self._flag_frames == 0:
                self._flags, self._flag_frames = 0, -1
        frame = protocol.encode_frame(
            wrench_for(counter), self.timestamp_us(counter), temperature_for(counter), status)
        if self._badcrc:
            self._badcrc -= 1
            frame = frame[:-2] + bytes((frame[-2] ^ 0x5A, frame[-1] ^ 0xA5))
        elif self._truncate:
            self._truncate -= 1
            frame = frame[:self._truncate_len]
        return prefix + frame

    def _write(self, data: bytes) -> int:
        if self._master < 0:
            return 0
        try:
            return os.write(self._master, data)
        except BlockingIOError:
            return 0  # nobody reads the port: the bytes are lost, as on a real UART
        except OSError as error:
            if error.errno in (errno.EIO, errno.EBADF):
                return 0
            raise

    def _apply_faults(self, now: int) -> None:
        while True:
            try:
                name, args = self._faults.get_nowait()
            except queue.Empty:
                return
            self._announce(f'fault: {name} {" ".join(args)}'.rstrip())
            if name == 'garbage':
                self._garbage += int(args[0])
            elif name == 'badcrc':
                self._badcrc += int(args[0])
            elif name == 'truncate':
                self._truncate += int(args[0]) if args else 1
                if len(args) > 1:
                    self._truncate_len = max(1, min(int(args[1]), protocol.FRAME_SIZE - 1))
            elif name == 'flags':
                self._flags = _flag_bits(args[0])
                self._flag_frames = int(args[1]) if len(args) > 1 and self._flags else -1
            elif name == 'stall':
                self._stall_until = now + int(args[0]) * 1_000_000
            elif name == 'reopen':
                # The link goes first: whoever sees the port close must not find the old link.
                if self.link is not None and self.link.is_symlink():
                    self.link.unlink()
                self._close_pty()
                self._reopen_at = now + max(1, int(args[0])) * 1_000_000

    def _read_control(self, control: socket.socket) -> None:
        while True:
            try:
                data = control.recv(4096)
            except BlockingIOError:
                return
            try:
                self._faults.put(parse_fault(data.decode(errors='replace')))
            except ValueError as error:
                self._announce(f'control: {error}')

    def _read_commands(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError as error:
            if error.errno == errno.EIO:  # no process has the port open
                return
            raise
        self._rx += data
        while True:
            end = min((i for i in (self._rx.find(b'\n'), self._rx.find(b'\r')) if i >= 0),
                      default=-1)
            if end < 0:
                if len(self._rx) > 1024:
                    self._rx.clear()
                return
            line = self._rx[:end].decode(errors='replace').strip()
            del self._rx[:end + 1]
            if line:
                self._command(line)

    def _command(self, line: str) -> None:
        self.stats.commands += 1
        self.commands.append(line)
        letter = line[0]
        fields = line.split(',')
        ok = True
        reply = b''
        if line == 'C':
            self.running_mode = False
        elif line == 'R':
            self.running_mode = True
            self._next_counter = self._counter_at(time.monotonic_ns()) + 1
        elif letter == 'c':
            ok = len(fields) == 5 and all(f.strip().isdigit() for f in fields[1:])
        elif letter == 'f':
            ok = self._set_filter(fields)
        elif letter == 'b':
            ok = len(fields) == 7 and _all_floats(fields[1:])
        elif line == 's':
            pass
        elif line == 'w':
            reply = (f'c,0,1,0,4\r\nf,{self.sinc_length},0,0,1\r\n').encode()
        elif line.startswith('p'):
            letter = 'p'
            reply = (f'p,0,{SERIAL_NUMBER},1,0,{PRODUCT_NAME},1.0.0,Gen0\r\n').encode()
        else:
            ok = False
        self._write(reply + f'r,{0 if ok else 1},{letter},0\r\n'.encode())

    def _set_filter(self, fields: list[str]) -> bool:
        if len(fields) != 5 or not all(f.strip().isdigit() for f in fields[1:]):
            return False
        sinc = int(fields[1])
        if not 10 <= sinc <= 4096:
            return False
        if sinc != self.sinc_length:
            # Re-anchor the schedule so the counter continues at the new rate.
            now = time.monotonic_ns()
            counter = self._counter_at(now)
            self._c_base, self._t_base = counter, self._due_ns(counter)
            self.sinc_length = sinc
            self._announce(f'sinc: {sinc}')
        return True


def _all_floats(fields: Sequence[str]) -> bool:
    try:
        [float(f) for f in fields]
    except ValueError:
        return False
    return True


def main(argv: list[str] | None = None) -> None:
    die_with_parent()
    parser = argparse.ArgumentParser(
        prog='bota_sim', description=__doc__.split('\n')[0],
        epilog='Fault commands: ' + ', '.join(FAULTS) + ' (see the module docstring).')
    parser.add_argument('--sinc', type=int, default=64,
                        help='sinc filter length; period = sinc/51200 s (64: 800 Hz, 51: ~1 kHz)')
    parser.add_argument('--link', help='stable symlink to the port, kept across reopen')
    parser.add_argument('--control', help='unix datagram socket accepting fault commands')
    parser.add_argument('--boot-mode', choices=('run', 'config'), default='run',
                        help='stream frames right after boot (run) or wait for R (config)')
    parser.add_argument('--start-counter', type=int, default=0,
                        help='first sample counter (e.g. near a timestamp wrap)')
    parser.add_argument('--fault', action='append', default=[],
                        help='fault command to inject, e.g. "badcrc 2"; repeatable')
    parser.add_argument('--fault-delay', type=float, default=1.0,
                        help='seconds after start at which --fault commands are injected')
    parser.add_argument('--remove-dir', type=Path,
                        help='directory to remove on exit: the run directory of the worker '
                             'that started us, which a kill -9 gives no chance to clean up')
    args = parser.parse_args(argv)
    for fault in args.fault:
        try:
            parse_fault(fault)
        except ValueError as error:
            parser.error(str(error))
    logging.basicConfig(level=logging.INFO, format='[%(levelname)s] [bota_sim]: %(message)s')

    def announce(line: str) -> None:
        print(line, flush=True)

    sim = BotaSimulator(args.sinc, args.link, args.control, args.boot_mode, args.start_counter,
                        announce=announce)
    sim.stop_on_signals()
    port = sim.open()
    announce(f'port: {port}')
    if args.link:
        announce(f'link: {args.link}')
    announce(f'epoch_ns: {sim.realtime_due_ns(args.start_counter)} counter: '
             f'{args.start_counter} period_ns: {sim.period_ns():.3f}')
    if args.fault:
        def inject_later() -> None:
            time.sleep(args.fault_delay)
            for fault in args.fault:
                sim.inject(fault)
        threading.Thread(target=inject_later, daemon=True).start()
    try:
        sim.run()
    finally:
        if args.remove_dir is not None:
            shutil.rmtree(args.remove_dir, ignore_errors=True)
    sys.exit(0)


if __name__ == '__main__':
    main()
