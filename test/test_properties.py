"""Property tests (hypothesis) of the pure parsers at the edges. No ROS graph.

The Bota Gen0 frame stream, the /ws/image header, and the checks and conversions of parameter
requests.
"""

import json
import math
import struct

from hypothesis import assume, given, settings
from hypothesis import strategies as st
import jsonschema_rs
import pytest
from rcl_interfaces.msg import ParameterType

from sensor_workers.bridge import imaging
from sensor_workers.bridge.request_checks import (
    MAX_PARAMETERS,
    MAX_STRING,
    PARAMETER_NAME,
    PARAMETERS_SCHEMA,
    InvalidRequest,
    check_parameter_body,
    coerce,
)
from sensor_workers.ft import protocol
from sensor_workers.ft.protocol import FRAME_SIZE, HEADER, FrameParser

# No example database: it would be written into the working tree (.hypothesis/examples).
PROPERTY = settings(database=None, deadline=None, max_examples=150)

# --------------------------------------------------------------------------- Bota Gen0 frames

float32 = st.floats(width=32, allow_nan=False)
frames = st.builds(
    protocol.Frame, status=st.integers(0, 0xFFFF), wrench=st.tuples(*[float32] * 6),
    timestamp_us=st.integers(0, 2**32 - 1), temperature=float32)
# Garbage that holds no header byte cannot hide a frame start, so what the parser must do with
# it is known exactly: skip every byte of it.
garbage = st.binary(min_size=1, max_size=100).filter(lambda b: HEADER not in b)


def _encode(frame: protocol.Frame) -> bytes:
    return protocol.encode_frame(frame.wrench, frame.timestamp_us, frame.temperature,
                                 frame.status)


@st.composite
def chunked(draw, data: bytes) -> list[bytes]:
    """Cut `data` at arbitrary points (the serial port hands over whatever it has)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    edges = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]


def _no_false_frame(stream: bytes, start: int, end: int) -> bool:
    """Return whether no window starting in [start, end) passes as a frame.

    A CRC-16 collision (1 in 65536 per window) would make the parser take bytes of the next
    real frame.
    """
    for i in range(start, end):
        try:
            protocol.decode_frame(stream[i:i + FRAME_SIZE])
        except ValueError:
            continue
        return False
    return True


def _feed(parser: FrameParser, chunks: list[bytes]) -> list[protocol.Frame]:
    return [frame for chunk in chunks for frame in parser.feed(chunk)]


def _counters(parser: FrameParser) -> tuple[int, ...]:
    return (parser.frames, parser.sync_losses, parser.crc_errors, parser.truncated,
            parser.skipped_bytes)


@PROPERTY
@given(st.data(), st.binary(max_size=400))
def test_any_byte_stream_parses_without_raising_and_every_byte_is_accounted_for(data, stream):
    parser = FrameParser()
    out = _feed(parser, data.draw(chunked(stream)))
    assert parser.frames == len(out)
    buffered = len(stream) - FRAME_SIZE * parser.frames - parser.skipped_bytes
    assert 0 <= buffered < FRAME_SIZE
    assert parser.truncated <= parser.crc_errors <= parser.sync_losses <= parser.frames


@PROPERTY
@given(st.data(), st.binary(max_size=300))
def test_the_result_does_not_depend_on_how_the_bytes_were_cut(data, stream):
    whole = FrameParser()
    expected = whole.feed(stream)
    parser = FrameParser()
    assert _feed(parser, data.draw(chunked(stream))) == expected
    assert _counters(parser) == _counters(whole)


@PROPERTY
@given(st.data(), st.lists(frames, min_size=1, max_size=8))
def test_valid_frames_come_out_as_sent_in_any_chunking(data, sent):
    stream = b''.join(_encode(frame) for frame in sent)
    parser = FrameParser()
    out = _feed(parser, data.draw(chunked(stream)))
    assert out == sent
    assert _counters(parser) == (len(sent), 0, 0, 0, 0) and parser.in_sync


@PROPERTY
@given(st.data(), st.lists(st.tuples(st.none() | garbage, frames), min_size=1, max_size=8))
def test_after_garbage_the_parser_resyncs_to_the_next_frame_and_counts(data, pieces):
    stream = b''.join((junk or b'') + _encode(frame) for junk, frame in pieces)
    parser = FrameParser()
    out = _feed(parser, data.draw(chunked(stream)))
    assert out == [frame for _, frame in pieces]
    assert parser.skipped_bytes == sum(len(junk or b'') for junk, _ in pieces)
    # Garbage before the first frame is no loss of sync; garbage after a frame is one.
    assert parser.sync_losses == sum(junk is not None for junk, _ in pieces[1:])
    assert parser.crc_errors == 0


@PROPERTY
@given(frames, st.integers(1, FRAME_SIZE - 1), st.lists(frames, min_size=1, max_size=4))
def test_a_truncated_frame_is_a_crc_error_and_the_next_frame_is_found(first, cut, after):
    """The sensor's frame cut short (a byte lost on the line), then frames again."""
    stream = _encode(first) + _encode(first)[:cut] + b''.join(_encode(f) for f in after)
    assume(_no_false_frame(stream, FRAME_SIZE, FRAME_SIZE + cut))
    parser = FrameParser()
    assert parser.feed(stream) == [first, *after]
    assert (parser.sync_losses, parser.crc_errors, parser.truncated) == (1, 1, 1)
    assert parser.skipped_bytes == cut


@PROPERTY
@given(frames, st.integers(1, FRAME_SIZE - 1), st.integers(0, 255))
def test_a_corrupted_frame_is_dropped_and_counted(frame, position, flip):
    corrupted = bytearray(_encode(frame))
    corrupted[position] ^= flip or 1
    stream = _encode(frame) + bytes(corrupted) + _encode(frame)
    assume(_no_false_frame(stream, FRAME_SIZE + 1, 2 * FRAME_SIZE))
    parser = FrameParser()
    out = parser.feed(stream)
    # CRC-16 detects every error confined to one byte: the corrupted frame never comes out.
    assert out == [frame, frame]
    assert parser.crc_errors == 1 and parser.sync_losses == 1
    assert parser.skipped_bytes == FRAME_SIZE


# --------------------------------------------------------------------------- /ws/image header

headers = st.fixed_dictionaries({
    'seq': st.integers(0, 2**63), 'stamp_ns': st.integers(0, 2**63),
    'width': st.integers(0, 65535), 'height': st.integers(0, 65535), 'encoding': st.text(),
    'format': st.sampled_from(imaging.FORMATS), 'dropped': st.integers(0, 2**63)})


@PROPERTY
@given(headers, st.binary(max_size=2000))
def test_image_header_round_trip(header, payload):
    message = imaging.pack(header, payload)
    (length,) = struct.unpack_from('<I', message)
    assert length == len(message) - 4 - len(payload)
    got, rest = imaging.unpack(message)
    assert got == header and bytes(rest) == payload


@PROPERTY
@given(headers, st.binary(max_size=50), st.data())
def test_a_cut_image_message_is_refused_or_keeps_its_header(header, payload, data):
    message = imaging.pack(header, payload)
    size = data.draw(st.integers(0, len(message)))
    head_end = len(message) - len(payload)
    if size < head_end:
        with pytest.raises(ValueError):
            imaging.unpack(message[:size])
    else:
        got, rest = imaging.unpack(message[:size])
        assert got == header and bytes(rest) == payload[:size - head_end]


@PROPERTY
@given(st.binary(max_size=200) | st.builds(
    lambda text, tail: struct.pack('<I', len(text.encode())) + text.encode() + tail,
    st.text(), st.binary(max_size=20)))
def test_any_image_message_unpacks_to_an_object_or_raises_value_error(message):
    try:
        header, rest = imaging.unpack(message)
    except ValueError:
        return
    assert isinstance(header, dict) and len(rest) <= len(message) - 4


def test_a_deeply_nested_header_is_a_value_error():
    nested = b'[' * 100_000
    with pytest.raises(ValueError):
        imaging.unpack(struct.pack('<I', len(nested)) + nested)


# --------------------------------------------------------------------------- parameters

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20) | \
    st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
names = st.from_regex(PARAMETER_NAME, fullmatch=True) | st.text(max_size=12)
bodies = st.dictionaries(names, json_values, max_size=MAX_PARAMETERS + 2) | json_values
# jsonschema-rs holds integers in 64 bits; a browser's JSON numbers are doubles anyway.
int64 = st.integers(-2**63, 2**63 - 1)
schema_scalars = st.booleans() | int64 | st.floats(allow_nan=False, allow_infinity=False) | \
    st.text(max_size=5) | st.builds(lambda n: 'x' * n, st.integers(MAX_STRING - 1,
                                                                     MAX_STRING + 1))
schema_values = schema_scalars | st.none() | st.lists(schema_scalars | st.none(), max_size=3)
schema_bodies = st.dictionaries(names, schema_values, max_size=MAX_PARAMETERS + 2) | \
    schema_values
VALIDATOR = jsonschema_rs.validator_for(PARAMETERS_SCHEMA)


@PROPERTY
@given(bodies)
def test_a_params_body_is_accepted_whole_or_refused_with_invalid_request(body):
    try:
        checked = check_parameter_body(body)
    except InvalidRequest:
        return
    assert checked is body and 1 <= len(body) <= MAX_PARAMETERS
    for name, value in body.items():
        assert PARAMETER_NAME.fullmatch(name)
        items = value if isinstance(value, list) else [value]
        assert items and all(isinstance(i, (bool, int, float, str)) for i in items)


@PROPERTY
@given(schema_bodies)
def test_the_documented_body_schema_is_what_the_bridge_accepts(body):
    try:
        check_parameter_body(body)
        accepted = True
    except InvalidRequest:
        accepted = False
    assert accepted == VALIDATOR.is_valid(body), json.dumps(body)[:300]


SCALAR_TYPES = {ParameterType.PARAMETER_BOOL: bool, ParameterType.PARAMETER_INTEGER: int,
                ParameterType.PARAMETER_DOUBLE: float, ParameterType.PARAMETER_STRING: str}
ARRAY_OFFSET = ParameterType.PARAMETER_BOOL_ARRAY - ParameterType.PARAMETER_BOOL


def _assert_same_value(result, value, declared: int) -> None:
    """Check that the scalar has the declared Python type and the value that was sent."""
    assert type(result) is SCALAR_TYPES[declared]
    assert not isinstance(value, bool) or declared == ParameterType.PARAMETER_BOOL
    if declared == ParameterType.PARAMETER_DOUBLE and isinstance(value, int) and \
            abs(value) > 2**53:
        assert result == float(value)  # a double holds 53 bits: rounded, not wrong
    else:
        assert result == value


@PROPERTY
@given(json_values | st.integers(-2**1100, 2**1100), st.integers(0, 10))
def test_coerce_keeps_the_value_in_the_declared_type_or_raises_invalid_request(value, declared):
    try:
        result = coerce('p', value, declared)
    except InvalidRequest:
        return
    if declared in SCALAR_TYPES:
        _assert_same_value(result, value, declared)
        if declared == ParameterType.PARAMETER_INTEGER:
            assert -2**63 <= result < 2**63
        if declared == ParameterType.PARAMETER_DOUBLE:
            assert math.isfinite(result)
    else:
        scalar = declared - ARRAY_OFFSET
        assert scalar in SCALAR_TYPES and isinstance(value, list)
        assert len(result) == len(value)
        for item_result, item in zip(result, value, strict=True):
            _assert_same_value(item_result, item, scalar)


@PROPERTY
@given(st.integers(-2**53, 2**53) | st.floats(allow_nan=False, allow_infinity=False)
       .filter(lambda f: f.is_integer() and abs(f) < 2**63))
def test_a_whole_json_number_is_an_integer_or_a_double(number):
    """JSON has one number type: 30 for a double is 30.0, 2.0 for an integer is 2."""
    assert coerce('p', number, ParameterType.PARAMETER_INTEGER) == number
    assert coerce('p', number, ParameterType.PARAMETER_DOUBLE) == number
