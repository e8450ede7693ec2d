"""The Foxglove protocol pieces without a server: schemas, frames, CDR answers, queues.

The schema text is checked by decoding real serialized messages with it in mcap-ros2-support's
ros2msg decoder (another parser than the one the integration test's npm client uses).
"""

import asyncio
import json
import struct

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import WrenchStamped
from mcap.records import Schema
from mcap_ros2.decoder import DecoderFactory
import pytest
from rclpy.serialization import serialize_message
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger

from sensor_workers.bridge.foxglove import protocol
from sensor_workers.bridge.foxglove.channels import Channel, header_stamp_ns
from sensor_workers.bridge.foxglove.fanout import FoxgloveFanout
from sensor_workers.bridge.foxglove.protocol import ProtocolError
from sensor_workers.bridge.foxglove.schema import SEPARATOR, message_schema, service_schemas
from sensor_workers.bridge.foxglove.services import trigger_response
from sensor_workers.bridge.foxglove.session import Frame, Session
from sensor_workers.bridge.metrics import BridgeMetrics
from sensor_workers.bridge.queues import DropOldestQueue


def _decode(type_name: str, schema: str, data: bytes):
    record = Schema(id=1, name=type_name, encoding='ros2msg', data=schema.encode())
    return DecoderFactory().decoder_for('cdr', record)(data)


def test_schema_has_every_dependency_once():
    schema = message_schema('diagnostic_msgs/msg/DiagnosticArray')
    names = [line for line in schema.splitlines() if line.startswith('MSG: ')]
    assert names == ['MSG: std_msgs/Header', 'MSG: diagnostic_msgs/DiagnosticStatus',
                     'MSG: diagnostic_msgs/KeyValue']
    assert schema.count(SEPARATOR) == 3 and 'builtin_interfaces/Time stamp' in schema


def test_schemas_decode_what_ros_serialized():
    wrench = WrenchStamped()
    wrench.header.stamp.sec, wrench.header.stamp.nanosec = 1_790_000_000, 123
    wrench.header.frame_id = 'ft_link'
    wrench.wrench.force.x, wrench.wrench.torque.z = 1.5, -0.25
    decoded = _decode('geometry_msgs/msg/WrenchStamped',
                      message_schema('geometry_msgs/msg/WrenchStamped'),
                      serialize_message(wrench))
    assert decoded.header.frame_id == 'ft_link' and decoded.wrench.force.x == 1.5
    assert decoded.wrench.torque.z == -0.25

    image = Image(height=2, width=3, encoding='mono8', step=3, data=bytes(range(6)))
    decoded = _decode('sensor_msgs/msg/Image', message_schema('sensor_msgs/msg/Image'),
                      serialize_message(image))
    assert bytes(decoded.data) == bytes(range(6)) and decoded.encoding == 'mono8'

    info = CameraInfo(width=640, distortion_model='plumb_bob', d=[0.1, 0.2])
    info.roi.width = 7
    decoded = _decode('sensor_msgs/msg/CameraInfo', message_schema('sensor_msgs/msg/CameraInfo'),
                      serialize_message(info))
    assert decoded.roi.width == 7 and list(decoded.d) == [0.1, 0.2]

    array = DiagnosticArray(status=[DiagnosticStatus(
        name='ft', level=b'\x01', values=[KeyValue(key='rate_hz', value='1000')])])
    decoded = _decode('diagnostic_msgs/msg/DiagnosticArray',
                      message_schema('diagnostic_msgs/msg/DiagnosticArray'),
                      serialize_message(array))
    assert decoded.status[0].values[0].value == '1000'


def test_trigger_answer_is_the_cdr_ros_writes():
    request_schema, response_schema = service_schemas('std_srvs/srv/Trigger')
    assert 'bool success' in response_schema and 'string message' in response_schema
    assert not request_schema.strip()
    for success, message in ((True, 'tared'), (False, ''), (True, 'ünïcode')):
        ours = trigger_response(success, message)
        theirs = serialize_message(Trigger.Response(success=success, message=message))
        # Equal but for the padding after the bool, which rclpy leaves uninitialised.
        assert len(ours) == len(theirs) and ours[:5] == theirs[:5] and ours[8:] == theirs[8:]
        decoded = _decode('std_srvs/srv/Trigger_Response', response_schema, ours)
        assert (decoded.success, decoded.message) == (success, message)


def test_message_data_frame_and_header_stamp():
    wrench = WrenchStamped()
    wrench.header.stamp.sec, wrench.header.stamp.nanosec = 12, 34
    payload = serialize_message(wrench)
    frame = protocol.message_data(7, 99, payload)
    assert frame[0] == 1 and struct.unpack_from('<IQ', frame, 1) == (7, 99)
    assert frame[13:] == payload
    assert header_stamp_ns(payload) == 12_000_000_034
    channel = Channel(1, '/ft/wrench', 'geometry_msgs/msg/WrenchStamped',
                      message_schema('geometry_msgs/msg/WrenchStamped'))
    assert channel.stamped and not channel.image
    assert channel.advertisement()['encoding'] == 'cdr'
    assert channel.advertisement()['schemaEncoding'] == 'ros2msg'
    status = Channel(2, '/safety/worker_events', 'diagnostic_msgs/msg/DiagnosticStatus',
                     message_schema('diagnostic_msgs/msg/DiagnosticStatus'))
    assert not status.stamped


@pytest.mark.parametrize('text, error', [
    ('{', 'malformed JSON'), ('[1]', 'JSON objects'), ('{"op": "advertise"}', "op 'advertise'"),
    ('{"op": 3}', 'unsupported op')])
def test_bad_client_text(text, error):
    with pytest.raises(ProtocolError, match=error):
        protocol.parse_text(text)


def test_client_binary_messages():
    call = protocol.parse_binary(struct.pack('<BIII', 2, 5, 9, 3) + b'cdr' + b'\x00\x01\x00\x00')
    assert (call.service_id, call.call_id, call.encoding) == (5, 9, 'cdr')
    answer = protocol.service_call_response(call, b'xy')
    assert answer == struct.pack('<BIII', 3, 5, 9, 3) + b'cdrxy'
    for data, error in ((b'', 'empty'), (b'\x01\x00\x00\x00\x00', 'clientPublish'),
                        (b'\x07', 'opcode 0x07'), (b'\x02\x00', 'truncated'),
                        (struct.pack('<BIII', 2, 1, 1, 50) + b'cdr', 'truncated')):
        with pytest.raises(ProtocolError, match=error):
            protocol.parse_binary(data)


def _session() -> Session:
    return Session('foxglove.sdk.v1', DropOldestQueue(4, 'queue_full'), queue_depth=3,
                   image_max_fps=30.0)


def test_per_topic_queues_drop_their_own_oldest():
    async def run():
        session = _session()
        wrench = session.subscribe(0, Channel(1, '/ft/wrench', 'geometry_msgs/msg/WrenchStamped',
                                              ''))
        image = session.subscribe(1, Channel(2, '/camera/image_raw', 'sensor_msgs/msg/Image', ''))
        events = session.subscribe(2, Channel(3, '/safety/worker_events',
                                              'diagnostic_msgs/msg/DiagnosticStatus', ''))
        seq = iter(range(100))
        session.put_frame(events, Frame(b'event', 0, next(seq)))
        for n in range(5):
            session.put_frame(image, Frame(b'image%d' % n, 0, next(seq)))
            session.put_frame(wrench, Frame(b'wrench%d' % n, 0, next(seq)))
        # The wrench queue lost its own two oldest; the event kept its place; the frames that
        # came at once are all kept (a client drops frames only once it is behind: test_queues).
        assert wrench.queue.dropped == {'queue_full': 2} and events.queue.total_dropped == 0
        assert image.queue.total_dropped == 0
        session.put_control('{"op":"status"}')
        sent = []

        async def send(data):
            sent.append(data)
            if len(sent) == 10:
                session.close()

        await session.run_sender(send, send, lambda *_: None)
        # Answers first, then every topic in the order the bridge received the messages.
        assert sent == ['{"op":"status"}', b'event', b'image0', b'image1', b'image2', b'wrench2',
                        b'image3', b'wrench3', b'image4', b'wrench4']
        status = session.status()
        assert status['dropped_by_reason'] == {'queue_full': 2}
        assert status['channels']['/ft/wrench']['sent'] == 3
        assert status['channels']['/camera/image_raw']['sent'] == 5

    asyncio.run(run())


def test_subscription_ids_and_channels_are_checked():
    async def run():
        session = _session()
        channel = Channel(1, '/ft/wrench', 'geometry_msgs/msg/WrenchStamped', '')
        session.subscribe(0, channel)
        with pytest.raises(ProtocolError, match='already in use'):
            session.subscribe(0, Channel(2, '/x', 'std_msgs/msg/String', ''))
        with pytest.raises(ProtocolError, match='already subscribed'):
            session.subscribe(1, channel)
        with pytest.raises(ProtocolError, match='unknown subscription'):
            session.unsubscribe(5)
        session.unsubscribe(0)
        assert not session.by_channel

    asyncio.run(run())


def test_server_info_and_status_are_json():
    info = json.loads(protocol.server_info('b', ['parameters'], ['cdr'], {'ROS_DISTRO': 'jazzy'},
                                           'abc'))
    assert info == {'op': 'serverInfo', 'name': 'b', 'capabilities': ['parameters'],
                    'supportedEncodings': ['cdr'], 'metadata': {'ROS_DISTRO': 'jazzy'},
                    'sessionId': 'abc'}
    assert json.loads(protocol.status(protocol.Level.ERROR, 'x'))['level'] == 2


def test_the_image_cap_judges_frames_by_their_stamps_not_their_arrival():
    """Frames of a 30 fps camera that DDS or a late loop delivers at once all pass a 30 fps cap."""
    async def run():
        metrics = BridgeMetrics(dict)
        fanout = FoxgloveFanout(metrics)
        channel = fanout.add_channel('/camera/image_raw', 'sensor_msgs/msg/Image',
                                     message_schema('sensor_msgs/msg/Image'))
        session = _session()
        fanout.add_session(1, session)
        fanout.subscribe(session, 0, channel.id)
        fanout.start(asyncio.get_running_loop())
        for n in range(6):  # stamps 1/30 s apart, handed over within microseconds
            image = Image()
            image.header.stamp.sec, image.header.stamp.nanosec = 100, round(n / 30 * 1e9)
            fanout.push(channel, serialize_message(image))
        await asyncio.sleep(0)
        queue = session.by_channel[channel.id].queue
        rate_limited = metrics.registry.get_sample_value(
            'sensor_workers_bridge_dropped_messages_total',
            {'topic': channel.label, 'reason': 'rate_limited'})
        assert (len(queue), queue.total_dropped, rate_limited) == (6, 0, 0)
        fanout.stop()

    asyncio.run(run())
