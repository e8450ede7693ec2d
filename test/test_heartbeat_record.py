"""The heartbeat record the worker's loop writes into the manager's pipe and onto ~/heartbeat."""

import pytest

from sensor_workers.diagnostics import WARN, level_of, status_values
from sensor_workers.heartbeat import HeartbeatRecord, RateWindow

RECORD = HeartbeatRecord(seq=7, samples=123_456, dropped=3, rate_hz=1003.5, pid=4242,
                         tid=4250, sent_ns=987_654_321_000, level=1, queue_dropped=2)


def test_records_round_trip_and_a_torn_tail_is_left_for_later():
    data = RECORD.pack() * 3
    assert len(data) == 3 * HeartbeatRecord.SIZE
    assert HeartbeatRecord.unpack_all(data) == [RECORD] * 3
    assert HeartbeatRecord.unpack_all(data[:-5]) == [RECORD] * 2
    assert HeartbeatRecord.unpack_all(b'') == []


def test_the_topic_carries_the_contract_values():
    status = RECORD.to_status('/ft', 'streaming', '/dev/ttyUSB0')
    assert (status.name, status.message, status.hardware_id) == ('/ft', 'streaming',
                                                                  '/dev/ttyUSB0')
    assert level_of(status) == WARN[0]
    assert status_values(status) == {'seq': '7', 'samples': '123456', 'rate_hz': '1003.5',
                                     'dropped': '3', 'pid': '4242', 'queue_dropped': '2'}


def test_the_topic_decodes_to_the_record_less_what_it_does_not_carry():
    status = RECORD.to_status('/ft', 'streaming', '/dev/ttyUSB0')
    assert HeartbeatRecord.from_status(status) == HeartbeatRecord(
        seq=7, samples=123_456, dropped=3, rate_hz=1003.5, pid=4242, tid=0, sent_ns=0,
        level=1, queue_dropped=2)
    status.values = status.values[1:]
    try:
        HeartbeatRecord.from_status(status)
    except ValueError as error:
        assert 'seq' in str(error)
    else:
        raise AssertionError('a status without seq decoded')


def test_a_standby_ready_record_is_seq_zero_with_the_default_level():
    ready = HeartbeatRecord(seq=0, samples=0, dropped=0, rate_hz=0.0, pid=4242, tid=4242,
                            sent_ns=1)
    assert HeartbeatRecord.unpack_all(ready.pack()) == [ready]  # the default level packs
    assert ready.standby_ready
    assert not RECORD.standby_ready


def test_the_rate_is_taken_over_a_second_not_over_one_beat():
    """A loop 10 ms late once: 72 samples in one 100 ms beat, 88 in the next (880 Hz per beat)."""
    window = RateWindow(1.0)
    samples, rates = 0, []
    for beat in range(1, 31):
        samples += {15: 72, 16: 88}.get(beat, 80)
        rates.append(window.update(beat * 0.1, samples))
    assert all(abs(rate - 800) <= 8 for rate in rates[1:]), rates
    assert window.update(3.2, 5) == 0.0  # a counter that started again: no rate from across it
    assert window.update(3.3, 85) == pytest.approx(800)
