"""Gen0 protocol: CRC, frame codec, the resyncing parser, timestamp unwrap, stamp mapping."""

import struct

import pytest

from sensor_workers.ft import protocol
from sensor_workers.ft.protocol import FRAME_SIZE, FrameParser, TimestampUnwrapper
from sensor_workers.ft.sim import counter_from_wrench, wrench_for
from sensor_workers.ft.stamping import StampMapper


def frame(counter: int, status: int = 0) -> bytes:
    return protocol.encode_frame(wrench_for(counter), counter * 1250, 35.0, status)


def test_crc16_x25_known_vectors():
    assert protocol.crc16_x25(b'123456789') == 0x906E  # the catalogue check value
    assert protocol.crc16_x25(b'') == 0x0000
    assert protocol.crc16_x25(b'\x00') == 0xF078


def test_frame_layout_is_37_bytes_little_endian():
    data = protocol.encode_frame((1.0, -2.0, 3.5, 0.25, -0.5, 0.125), 0x01020304, 36.5,
                                 protocol.OVERRANGE)
    assert len(data) == FRAME_SIZE == 37
    assert data[0] == 0xAA
    assert data[1:3] == b'\x02\x00'
    assert struct.unpack_from('<6f', data, 3) == (1.0, -2.0, 3.5, 0.25, -0.5, 0.125)
    assert data[27:31] == b'\x04\x03\x02\x01'
    assert struct.unpack_from('<f', data, 31) == (36.5,)
    assert struct.unpack_from('<H', data, 35)[0] == protocol.crc16_x25(data[1:35])
    decoded = protocol.decode_frame(data)
    assert decoded.wrench == (1.0, -2.0, 3.5, 0.25, -0.5, 0.125)
    assert decoded.timestamp_us == 0x01020304
    assert decoded.flags() == ['overrange']


def test_decode_rejects_bad_frames():
    good = frame(1)
    with pytest.raises(ValueError, match='CRC'):
        protocol.decode_frame(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(ValueError, match='header'):
        protocol.decode_frame(b'\x55' + good[1:])
    with pytest.raises(ValueError, match='bytes'):
        protocol.decode_frame(good[:-1])


def test_parser_handles_arbitrary_chunking():
    stream = b''.join(frame(c) for c in range(50))
    parser = FrameParser()
    frames = []
    for i in range(0, len(stream), 7):
        frames += parser.feed(stream[i:i + 7])
    assert [counter_from_wrench(f.wrench) for f in frames] == list(range(50))
    assert (parser.sync_losses, parser.crc_errors, parser.skipped_bytes) == (0, 0, 0)


def test_parser_resyncs_after_leading_text_without_counting_a_loss():
    parser = FrameParser()
    frames = parser.feed(b'r,0,R,0\r\n' + frame(0) + frame(1))
    assert len(frames) == 2
    assert parser.sync_losses == 0
    assert parser.skipped_bytes == 9


def test_parser_resyncs_after_garbage():
    parser = FrameParser()
    garbage = bytes(range(0x10, 0x10 + 23))
    frames = parser.feed(frame(0) + garbage + frame(1) + frame(2))
    assert [counter_from_wrench(f.wrench) for f in frames] == [0, 1, 2]
    assert (parser.sync_losses, parser.crc_errors, parser.skipped_bytes) == (1, 0, 23)


def test_parser_garbage_with_header_bytes_and_false_frames():
    parser = FrameParser()
    garbage = bytes([0xAA]) * 40 + bytes([0xAA, 0x00, 0x01])
    frames = parser.feed(frame(0) + garbage + frame(1))
    assert [counter_from_wrench(f.wrench) for f in frames] == [0, 1]
    assert parser.sync_losses == 1
    assert parser.skipped_bytes == len(garbage)


def test_parser_counts_bad_crc_and_drops_the_frame():
    bad = bytearray(frame(1))
    bad[-1] ^= 0xFF
    parser = FrameParser()
    frames = parser.feed(frame(0) + bytes(bad) + frame(2))
    assert [counter_from_wrench(f.wrench) for f in frames] == [0, 2]
    assert (parser.crc_errors, parser.sync_losses, parser.truncated) == (1, 1, 0)
    assert parser.skipped_bytes == FRAME_SIZE


def test_parser_counts_truncated_frame():
    parser = FrameParser()
    frames = parser.feed(frame(0) + frame(1)[:20] + frame(2) + frame(3))
    assert [counter_from_wrench(f.wrench) for f in frames] == [0, 2, 3]
    assert (parser.crc_errors, parser.sync_losses, parser.truncated) == (1, 1, 1)
    assert parser.skipped_bytes == 20


def test_parser_waits_for_the_rest_of_a_partial_frame():
    parser = FrameParser()
    data = frame(0)
    assert parser.feed(data[:36]) == []
    assert len(parser.feed(data[36:])) == 1
    assert parser.sync_losses == 0


def test_timestamp_unwrap_across_uint32_wrap():
    unwrapper = TimestampUnwrapper()
    start = 2**32 - 2500
    values = [(start + i * 1250) % 2**32 for i in range(5)]
    assert [unwrapper.unwrap(v) for v in values] == [start + i * 1250 for i in range(5)]
    unwrapper.reset()
    assert unwrapper.unwrap(10) == 10


def test_sample_period():
    assert protocol.sample_period_s(64) == pytest.approx(1 / 800)
    assert 1 / protocol.sample_period_s(51) == pytest.approx(1003.92, abs=0.01)


def test_wrench_signal_encodes_its_counter():
    for counter in (0, 1, 499, 123456, 999_999):
        assert counter_from_wrench(wrench_for(counter)) == counter
    assert -21.0 < wrench_for(7)[2] < -19.0  # a plausible load on Fz


def test_stamps_follow_the_fastest_sample_and_never_exceed_receive_time():
    mapper = StampMapper()
    period_us = 1250
    delays_ns = [300_000, 50_000, 2_000_000, 60_000, 55_000, 900_000]
    base_ns = 10**18
    stamps = []
    for i, delay in enumerate(delays_ns):
        receive = base_ns + i * period_us * 1000 + delay
        stamps.append(mapper.stamp(i * period_us, receive))
        assert stamps[-1] <= receive
    # After the fast sample at index 1 the stamps are evenly spaced despite the jitter (up to
    # the 100 ppm drift allowance).
    for a, b in zip(stamps[1:], stamps[2:], strict=False):
        assert 1_250_000 <= b - a <= 1_250_000 + 125
