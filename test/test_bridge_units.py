"""Pure pieces of the bridge, without ROS: queues, batching, frames, access rules, validation."""

import asyncio
import json
import socket

import numpy as np
import pytest
from rcl_interfaces.msg import ParameterType
import simplejpeg

from sensor_workers.bridge import imaging
from sensor_workers.bridge.devices import DeviceTable
from sensor_workers.bridge.latency import LatencyWindow
from sensor_workers.bridge.logs import MAX_TEXT_CHARS, LogBook, LogLine, level_name, level_number
from sensor_workers.bridge.node import listen_socket
from sensor_workers.bridge.queues import DropOldestQueue, QueueClosed, RateLimiter
from sensor_workers.bridge.request_checks import InvalidRequest, check_parameter_body, coerce
from sensor_workers.bridge.security import bearer_token, origin_allowed, refusal, token_ok
from sensor_workers.bridge.wrench import WrenchBatcher
from sensor_workers.heartbeat import HeartbeatRecord


def test_queue_drops_oldest_and_counts_weight():
    async def run():
        queue = DropOldestQueue(2, 'queue_full')
        assert queue.put('a', 10) == 0
        assert queue.put('b', 20) == 0
        assert queue.put('c', 30) == 10
        assert queue.dropped == {'queue_full': 10}
        assert len(queue) == 2
        assert [await queue.get(), await queue.get()] == ['b', 'c']
        waiter = asyncio.ensure_future(queue.get())
        await asyncio.sleep(0)
        assert not waiter.done()
        queue.put('d')
        assert await waiter == 'd'
        queue.close()
        with pytest.raises(QueueClosed):
            await queue.get()

    asyncio.run(run())


def test_latest_only_slot():
    queue = DropOldestQueue(1, 'superseded')
    for item in range(5):
        queue.put(item)
    assert len(queue) == 1 and queue.total_dropped == 4
    assert asyncio.run(queue.get()) == 4


def test_a_queue_with_a_staleness_bound_keeps_a_pause_and_drops_a_backlog():
    now = [0.0]
    queue = DropOldestQueue(8, 'superseded', stale_after_s=0.25, clock=lambda: now[0])
    for _ in range(7):  # a consumer that pauses for 200 ms at 30 fps loses nothing
        queue.put(round(now[0] * 30))
        now[0] += 1 / 30
    assert len(queue) == 7 and queue.total_dropped == 0
    assert queue.pop() == 0
    now[0] = 0.5  # the oldest waiting entry is older than 0.25 s: the consumer is behind
    assert queue.put('newest') == 6
    assert len(queue) == 1 and queue.pop() == 'newest'
    for n in range(10):  # at once: the capacity still holds
        queue.put(n)
    assert len(queue) == 8 and queue.dropped == {'superseded': 8}


def test_rate_limiter_starts_again_when_the_clock_goes_back():
    limiter = RateLimiter(30.0)
    assert limiter.accept(100.0)
    # A source whose clock restarted: at most one frame is held back, not the 95 s in between.
    accepted = [limiter.accept(5.0 + n / 30.0) for n in range(30)]
    assert accepted[1:] == [True] * 29


def test_rate_limiter_halves_a_jittery_30_fps_source():
    limiter = RateLimiter(15.0)
    rng = np.random.default_rng(1)
    times = np.arange(300) / 30.0 + rng.uniform(-0.004, 0.004, 300)
    accepted = sum(limiter.accept(t) for t in times)
    assert 148 <= accepted <= 151


def test_rate_limiter_passes_everything_under_the_limit():
    limiter = RateLimiter(60.0)
    assert all(limiter.accept(t / 30.0) for t in range(100))


def test_rate_limiter_keeps_every_frame_of_a_jittery_source_at_the_limit():
    limiter = RateLimiter(30.0)
    rng = np.random.default_rng(2)
    times = np.arange(300) / 30.0 + rng.uniform(-0.01, 0.01, 300)
    assert sum(limiter.accept(t) for t in times) >= 299


def test_wrench_batch_encodes_once_and_carries_client_drops():
    batcher = WrenchBatcher()
    assert batcher.take() is None
    for i in range(3):
        batcher.push((1000 + i, 1.0, 2.0, 3.0, 0.1, 0.2, 0.3))
    batch = batcher.take()
    assert batch.count == 3 and batch.oldest_ns == 1000 and batch.newest_ns == 1002
    message = json.loads(batch.message(dropped=7))
    assert message['dropped'] == 7 and message['seq'] == 1
    assert message['samples'][2] == [1002, 1.0, 2.0, 3.0, 0.1, 0.2, 0.3]


def test_wrench_backlog_overflow_is_counted():
    batcher = WrenchBatcher(backlog=10)
    for i in range(25):
        batcher.push((i, 0, 0, 0, 0, 0, 0))
    assert batcher.take().count == 10
    assert batcher.backlog_dropped == 15


def _frame(encoding: str, array: np.ndarray, big_endian: bool = False) -> imaging.Frame:
    height, width = array.shape[:2]
    data = array.astype(array.dtype.newbyteorder('>' if big_endian else '<')).tobytes()
    return imaging.Frame(seq=3, stamp_ns=123, width=width, height=height, encoding=encoding,
                         step=len(data) // height, data=data, is_bigendian=big_endian)


def test_header_framing_round_trip():
    message = imaging.pack({'seq': 1, 'format': 'raw'}, b'\x01\x02')
    header, payload = imaging.unpack(message)
    assert header == {'seq': 1, 'format': 'raw'} and bytes(payload) == b'\x01\x02'
    assert int.from_bytes(message[:4], 'little') == len(json.dumps(header,
                                                                   separators=(',', ':')))
    with pytest.raises(ValueError):
        imaging.unpack(b'\xff\x00\x00\x00{}')


@pytest.mark.parametrize('encoding,shape,dtype', [
    ('mono8', (48, 64), np.uint8), ('mono16', (48, 64), np.uint16),
    ('rgb8', (48, 64, 3), np.uint8), ('bgr8', (48, 64, 3), np.uint8),
    ('bayer_rggb8', (48, 64), np.uint8), ('bayer_gbrg16', (48, 64), np.uint16),
])
def test_every_encoding_becomes_a_jpeg(encoding, shape, dtype):
    array = np.random.default_rng(0).integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    encoded = imaging.encode(_frame(encoding, array), imaging.Variant('jpeg', 0))
    decoded = simplejpeg.decode_jpeg(encoded.payload, colorspace='RGB')
    assert decoded.shape[:2] == (encoded.height, encoded.width)
    assert encoded.format == 'jpeg' and encoded.seq == 3 and encoded.stamp_ns == 123


def test_bayer_is_demosaiced_to_colour():
    cells = np.zeros((4, 4), np.uint8)
    cells[0::2, 0::2] = 200  # red sites of RGGB
    rgb, encoding = imaging.displayable(_frame('bayer_rggb8', cells))
    assert encoding == 'rgb8' and rgb.shape == (2, 2, 3)
    assert (rgb[..., 0] == 200).all() and (rgb[..., 1] == 0).all() and (rgb[..., 2] == 0).all()


def test_downscale_before_encode_and_raw_passthrough():
    array = np.arange(480 * 640, dtype=np.uint32).astype(np.uint8).reshape(480, 640)
    frame = _frame('mono8', array)
    small = imaging.encode(frame, imaging.Variant('raw', 200))
    assert small.width <= 200 and small.width == 160 and small.height == 120
    assert np.array_equal(np.frombuffer(small.payload, np.uint8).reshape(120, 160),
                          array[::4, ::4])
    full = imaging.encode(frame, imaging.Variant('raw', 0))
    assert full.payload == array.tobytes() and full.encoding == 'mono8'


def test_mono16_big_endian_raw_is_sent_little_endian():
    array = np.array([[1, 258], [65535, 4096]], np.uint16)
    encoded = imaging.encode(_frame('mono16', array, big_endian=True), imaging.Variant('raw', 0))
    assert np.array_equal(np.frombuffer(encoded.payload, '<u2').reshape(2, 2), array)


def test_padded_rows_and_bad_frames():
    array = np.ones((4, 6), np.uint8)
    padded = np.zeros((4, 8), np.uint8)
    padded[:, :6] = array
    frame = imaging.Frame(1, 0, 6, 4, 'mono8', 8, padded.tobytes())
    assert imaging.encode(frame, imaging.Variant('raw', 0)).payload == array.tobytes()
    with pytest.raises(imaging.UnsupportedEncoding):
        imaging.encode(imaging.Frame(1, 0, 6, 4, 'yuv422', 12, bytes(48)),
                       imaging.Variant('jpeg', 0))
    with pytest.raises(ValueError):
        imaging.to_array(imaging.Frame(1, 0, 6, 4, 'mono8', 6, bytes(10)))


def test_tokens_and_origins():
    assert bearer_token('Bearer abc') == 'abc'
    assert bearer_token('bearer  abc ') == 'abc'
    assert bearer_token('Basic abc') is None and bearer_token(None) is None
    assert token_ok('', None)
    assert token_ok('s3', 's3') and not token_ok('s3', 's4') and not token_ok('s3', None)
    assert origin_allowed(None, '127.0.0.1:8080', ())
    assert origin_allowed('http://127.0.0.1:8080', '127.0.0.1:8080', ())
    assert not origin_allowed('http://evil.example', '127.0.0.1:8080', ())
    assert not origin_allowed('null', '127.0.0.1:8080', ())
    assert origin_allowed('http://ops.example', '127.0.0.1:8080', ('http://ops.example',))
    assert origin_allowed('http://any.example', '127.0.0.1:8080', ('*',))


def test_a_request_is_refused_for_its_origin_first_then_its_token():
    host = {'host': '127.0.0.1:8080'}
    assert refusal(host, None, '', ()) is None
    assert refusal({**host, 'origin': 'http://evil.example'}, 's3', 's3', ()) == 'origin'
    assert refusal(host, None, 's3', ()) == 'token'
    assert refusal({**host, 'authorization': 'Bearer s3'}, None, 's3', ()) is None
    # ?token= (websockets) is taken before the header
    assert refusal({**host, 'authorization': 'Bearer s3'}, 's4', 's3', ()) == 'token'
    assert refusal(host, 's3', 's3', ()) is None


def test_parameter_requests_are_checked_and_coerced():
    assert coerce('frame_rate', 30, ParameterType.PARAMETER_DOUBLE) == 30.0
    assert coerce('width', 640.0, ParameterType.PARAMETER_INTEGER) == 640
    assert coerce('emulate', True, ParameterType.PARAMETER_BOOL) is True
    assert coerce('xs', [1, 2], ParameterType.PARAMETER_DOUBLE_ARRAY) == [1.0, 2.0]
    for name, value, declared in [('w', 1.5, ParameterType.PARAMETER_INTEGER),
                                  ('f', True, ParameterType.PARAMETER_DOUBLE),
                                  ('f', '3', ParameterType.PARAMETER_DOUBLE),
                                  ('n', 1, ParameterType.PARAMETER_NOT_SET),
                                  ('xs', 1, ParameterType.PARAMETER_DOUBLE_ARRAY)]:
        with pytest.raises(InvalidRequest):
            coerce(name, value, declared)
    for body in [[], {}, 'x', {'a b': 1}, {'x': None}, {'x': {'y': 1}}, {'x': []},
                 {f'p{i}': 1 for i in range(40)}]:
        with pytest.raises(InvalidRequest):
            check_parameter_body(body)


def _beat(rate_hz: float = 1000.0, pid: int = 9) -> HeartbeatRecord:
    return HeartbeatRecord(seq=1, samples=5, dropped=0, rate_hz=rate_hz, pid=pid, tid=0,
                           sent_ns=0)


def _manager_says(table: DeviceTable, state: str, now: float, **values: str) -> None:
    table.from_manager([{'name': 'ft', 'level': 0 if state == 'active' else 2,
                         'message': state, 'values': {'state': state, **values}}], now)


def test_device_table_without_and_with_manager():
    table = DeviceTable(('ft',), heartbeat_timeout_s=0.5, manager_timeout_s=2.0)
    assert table.record('ft', 0.0)['state'] == 'unknown'
    table.from_heartbeat('ft', _beat(), 'running', 1.0)
    record = table.record('ft', 1.1)
    assert record['up'] and record['state'] == 'active' and record['rate_hz'] == 1000.0
    assert record['source'] == 'heartbeat' and record['message'] == 'running'
    assert table.record('ft', 2.0)['state'] == 'down'
    assert [r['name'] for r in table.changes(1.1)] == ['ft']
    assert table.changes(1.2) == []
    _manager_says(table, 'restarting', 2.0, restarts='2', degraded='false',
                  last_error='exited')
    record = table.record('ft', 2.0)
    assert record['state'] == 'restarting' and record['restarts'] == 2 and not record['up']
    assert record['level'] == 'error' and record['last_error'] == 'exited'
    assert [r['state'] for r in table.changes(2.0)] == ['restarting']


def test_while_a_manager_publishes_its_verdict_is_shown_not_the_bridges_own():
    table = DeviceTable(('ft',), heartbeat_timeout_s=0.5, manager_timeout_s=2.0)
    table.from_heartbeat('ft', _beat(), 'running', 0.0)
    # The bridge saw no heartbeat for 1.5 s (its own DDS delivery was late), but the manager,
    # reading the worker's pipe, says active: the device is up.
    _manager_says(table, 'active', 1.5, rate_hz='998.0', pid='9')
    record = table.record('ft', 1.5)
    assert record['up'] and record['state'] == 'active' and record['source'] == 'manager'
    assert record['rate_hz'] == 998.0 and record['heartbeat_age_ms'] == 1500.0
    # And a fresh heartbeat does not make a device up that the manager is restarting.
    table.from_heartbeat('ft', _beat(), 'running', 1.6)
    _manager_says(table, 'restarting', 1.6)
    assert not table.record('ft', 1.6)['up']


def test_without_a_manager_the_bridge_judges_with_the_managers_last_threshold():
    table = DeviceTable(('ft',), heartbeat_timeout_s=0.5, manager_timeout_s=2.0)
    _manager_says(table, 'active', 0.0, heartbeat_timeout_ms='300')
    table.from_heartbeat('ft', _beat(), 'running', 10.0)  # the manager is long gone
    assert table.record('ft', 10.29)['up']
    record = table.record('ft', 10.31)
    assert not record['up'] and record['state'] == 'down' and record['source'] == 'heartbeat'
    # Never heard of a manager: the bridge's own setting.
    alone = DeviceTable(('ft',), heartbeat_timeout_s=0.5, manager_timeout_s=2.0)
    alone.from_heartbeat('ft', _beat(), 'running', 0.0)
    assert alone.record('ft', 0.49)['up'] and not alone.record('ft', 0.51)['up']


def test_listening_socket_gives_accepted_sockets_tcp_nodelay():
    server = listen_socket('127.0.0.1', 0)
    with server, socket.create_connection(server.getsockname()):
        accepted, _ = server.accept()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_log_book_takes_the_watched_nodes_lines_from_info_up():
    book = LogBook(('ft', 'manager'), rate_per_node=10.0, burst=5, history=3)
    assert book.take('ft.sim', 30, 'port closed', 7, now=0.0) == LogLine('ft', 'warn',
                                                                         'port closed', 7)
    assert book.take('bridge', 40, 'not watched', 1, now=0.0) is None
    assert book.take('ftx', 40, 'a prefix is not a child', 1, now=0.0) is None
    assert book.take('manager', 10, 'debug never', 1, now=0.0) is None
    assert book.take('manager', 25, 'between levels', 1, now=0.0).level == 'info'
    assert book.take('manager', 60, 'above fatal', 1, now=0.0).level == 'fatal'
    assert book.take('ft', 20, 'x' * 5000, 1, now=0.0).text == 'x' * MAX_TEXT_CHARS
    assert LogLine('ft', 'error', 'e', 3).event() == {
        'type': 'log', 'node': 'ft', 'level': 'error', 'text': 'e', 'stamp_ns': 3}


def test_log_book_limits_each_node_and_counts_what_it_drops():
    drops = []
    book = LogBook(('ft', 'manager'), rate_per_node=10.0, burst=5, history=3,
                   count_drop=lambda: drops.append(1))
    taken = [book.take('ft', 30, f'line {i}', i, now=0.0) for i in range(8)]
    assert sum(line is not None for line in taken) == 5  # the burst
    assert book.take('manager', 30, 'another node is not limited by ft', 9, now=0.0)
    assert book.take('ft', 30, 'still over', 9, now=0.05) is None
    assert book.take('ft', 30, 'tokens came back', 9, now=0.2) is not None  # 10 lines/s
    status = book.status()
    assert status['ft']['dropped'] == 4 == len(drops)
    assert status['ft']['accepted'] == 6
    assert [line['text'] for line in status['ft']['lines']] == [
        'line 3', 'line 4', 'tokens came back']  # the last 3, oldest first
    assert status['manager']['lines'][0]['node'] == 'manager'


def test_log_levels_by_name():
    assert level_number('info') == 20 and level_name(30) == 'warn' and level_name(5) == 'debug'
    with pytest.raises(ValueError, match='log_level must be one of debug, info, warn'):
        level_number('verbose')


def test_latency_window_percentiles_over_the_last_seconds():
    window = LatencyWindow(window_s=10)
    for i in range(1000):  # one second: 1 ms for 98.9 %, 200 ms for the slowest 1.1 %
        window.observe(0.2 if i % 90 == 0 else 0.001, now=100.0 + i / 1000)
    summary = window.summary(now=100.999, span_s=10)
    assert summary['count'] == 1000
    assert 0.9 <= summary['p50_ms'] <= 1.1  # within a bin (19 %) of 1 ms
    assert 180 <= summary['p99_ms'] <= 220
    window.observe(0.05, now=111.5)  # ten seconds later the old second is gone
    later = window.summary(now=111.5, span_s=10)
    assert later['count'] == 1 and 45 <= later['p50_ms'] <= 55
    assert window.summary(now=125.0, span_s=10) == {
        'p50_ms': None, 'p99_ms': None, 'count': 0, 'span_s': 10}
    window.observe(-0.001, now=125.0)  # a stamp from the future (clock step): the lowest bin
    window.observe(3600.0, now=125.0)  # above the top: the last bin
    edges = window.summary(now=125.0, span_s=1)
    assert edges['p50_ms'] == 0.01 and edges['p99_ms'] > 10_000


def test_device_table_keeps_the_workers_diagnostics():
    table = DeviceTable(('camera', 'ft'), heartbeat_timeout_s=0.3, manager_timeout_s=2.0)
    table.from_diagnostics('camera', {'recording': 'true', 'recording_path': '/r/a.mcap',
                                      'recorded_frames': '12'}, now=5.0)
    table.from_diagnostics('someone_else', {'x': '1'}, now=5.0)
    record = table.record('camera', now=5.5)
    assert record['diagnostics']['recording'] is True
    assert record['diagnostics']['recording_path'] == '/r/a.mcap'
    assert record['diagnostics_age_ms'] == 500.0
    assert 'someone_else' not in table.devices
