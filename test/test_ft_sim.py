"""The simulated Gen0 sensor at the serial level: commands, frame timing, faults, reopen."""

import os
from pathlib import Path
import select
import signal
import sys
import time

import pytest
import serial

from sensor_workers.ft import protocol
from sensor_workers.ft.protocol import FrameParser
from sensor_workers.ft.sim import BotaSimulator, counter_from_wrench, send_control


@pytest.fixture
def sim(tmp_path: Path):
    simulator = BotaSimulator(64, link=tmp_path / 'port', boot_mode='config')
    simulator.start()
    yield simulator
    simulator.stop()


def command(port: serial.Serial, line: str, timeout: float = 2.0) -> bytes:
    port.write(line.encode() + b'\n')
    answer = b''
    ack = f',{line[0]},'.encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer += port.read(port.in_waiting or 1)
        if b'r,' in answer and ack in answer.split(b'r,', 1)[1] and answer.endswith(b'\n'):
            return answer
    raise TimeoutError(f'no ack to {line!r}: {answer!r}')


def collect(port: serial.Serial, parser: FrameParser, seconds: float) -> list:
    frames = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frames += parser.feed(port.read(port.in_waiting or 1))
    return frames


def test_commands_are_acknowledged(sim):
    with serial.Serial(str(sim.link), 460800, timeout=0.05) as port:
        for line in ('C', 'c,0,1,0,4', 'f,64,0,0,1', 'b,0.0,0.0,0.0,0.0,0.0,0.0', 's'):
            assert command(port, line).strip().endswith(f'r,0,{line[0]},0'.encode())
        metadata = command(port, 'p?').decode().splitlines()[0].split(',')
        assert metadata[:2] == ['p', '0'] and len(metadata) >= 6
        assert b'f,64' in command(port, 'w')
        assert command(port, 'x').strip().endswith(b'r,1,x,0')
    assert sim.commands[:2] == ['C', 'c,0,1,0,4']


def test_run_mode_streams_at_the_configured_rate_without_gaps(sim):
    with serial.Serial(str(sim.link), 460800, timeout=0.05) as port:
        command(port, 'f,51,0,0,1')
        port.write(b'R\n')
        parser = FrameParser()
        frames = collect(port, parser, 1.0)
        command(port, 'C')
    counters = [counter_from_wrench(f.wrench) for f in frames]
    assert counters == list(range(counters[0], counters[0] + len(counters)))
    assert 900 <= len(frames) <= 1100
    period_us = protocol.sample_period_s(51) * 1e6
    assert frames[-1].timestamp_us - frames[0].timestamp_us == pytest.approx(
        (len(frames) - 1) * period_us, abs=1)


def test_faults_are_seen_by_the_parser(sim):
    with serial.Serial(str(sim.link), 460800, timeout=0.05) as port:
        port.write(b'R\n')
        parser = FrameParser()
        collect(port, parser, 0.2)
        skipped_before = parser.skipped_bytes  # the `r,0,R,0` ack before the first frame
        for fault in ('garbage 11', 'badcrc 1', 'truncate 1 15', 'flags overrange,invalid 5'):
            sim.inject(fault)
            frames = collect(port, parser, 0.1)
        sim.inject('stall 200')
        # The last frame before the stall: without it the gap is invisible whenever the stall
        # begins before this read sees a frame.
        frames = frames[-1:] + collect(port, parser, 0.5)
    counters = [counter_from_wrench(f.wrench) for f in frames]
    largest_gap = max(b - a for a, b in zip(counters, counters[1:], strict=False))
    assert parser.sync_losses == 3
    assert parser.crc_errors == 2
    assert parser.truncated == 1
    assert parser.skipped_bytes - skipped_before == 11 + 37 + 15
    assert 150 <= largest_gap * 1.25 <= 260  # ms of samples lost to the stall


def test_status_flags(sim):
    with serial.Serial(str(sim.link), 460800, timeout=0.05) as port:
        port.write(b'R\n')
        parser = FrameParser()
        collect(port, parser, 0.1)
        sim.inject('flags overrange,invalid 5')
        frames = collect(port, parser, 0.2)
    flagged = [f for f in frames if f.status]
    assert len(flagged) == 5
    assert flagged[0].flags() == ['overrange', 'invalid']


def test_reopen_keeps_the_stable_link(sim):
    first = sim.port
    port = serial.Serial(str(sim.link), 460800, timeout=0.05)
    port.write(b'R\n')
    sim.inject('reopen 300')
    lost = False
    deadline = time.monotonic() + 2
    while not lost and time.monotonic() < deadline:
        try:
            readable, _, _ = select.select([port.fileno()], [], [], 0.05)
            if readable and not os.read(port.fileno(), 4096):
                lost = True
        except OSError:
            lost = True
    port.close()
    assert lost
    deadline = time.monotonic() + 3
    while not sim.link.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sim.link.exists()
    assert os.path.realpath(sim.link) == sim.port
    with serial.Serial(str(sim.link), 460800, timeout=0.05) as port:
        assert command(port, 'C').strip().endswith(b'r,0,C,0')
    assert first.startswith('/dev/pts/')


def test_console_script_prints_port_first_and_takes_faults_at_run_time(procs, tmp_path):
    control = tmp_path / 'control'
    sim = procs.start('bota_sim', [sys.executable, '-m', 'sensor_workers.ft.sim', '--sinc', '64',
                                   '--link', str(tmp_path / 'port'), '--control', str(control)])
    sim.wait_for_output(r'epoch_ns', timeout=10)
    assert sim.output().splitlines()[0].startswith('port: /dev/pts/')
    send_control(control, 'badcrc 1')
    sim.wait_for_output(r'^fault: badcrc 1$', timeout=5)
    with pytest.raises(ValueError):
        send_control(control, 'explode 3')
    sim.signal(signal.SIGTERM)
    assert sim.popen.wait(5) == 0
    assert not (tmp_path / 'port').exists()
