"""`WS /foxglove` served by a real uvicorn from settings, a hub and a fake controller.

A thread stands in for the ROS executor and hands serialized messages to the hub as the node
does (`hub.foxglove.push`); the clients are real websocket clients. What only real ROS can show
(schemas against real messages, rates of real workers, the ecosystem's own client) is in
test_bridge_foxglove.py.
"""

import asyncio
from collections.abc import Iterator
import json
import re
import struct
import time

from app_helpers import FakeController, serve
from geometry_msgs.msg import WrenchStamped
import httpx
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from sensor_workers.bridge.foxglove.protocol import SUBPROTOCOLS
from sensor_workers.bridge.foxglove.schema import message_schema
from sensor_workers.bridge.foxglove.session import IMAGE_QUEUE_FRAMES
from sensor_workers.bridge.hub import Hub
from sensor_workers.bridge.schemas import Status
from sensor_workers.bridge.settings import BridgeSettings

TOKEN = 'fox-token'
# Half a second of 1 kHz wrench per client: a reader on a loaded host is late by more than 50 ms
# at times (it lost 2 samples with 50), while the stalled client overflows it within a second.
SETTINGS = BridgeSettings(devices=('camera', 'ft'), cameras=('camera',), auth_token=TOKEN,
                          allowed_origins=('http://ops.example',), max_ws_message_bytes=1024,
                          foxglove_queue_messages=500, foxglove_image_max_fps=10.0,
                          send_buffer_bytes=65536)
WRENCH = 'geometry_msgs/msg/WrenchStamped'
IMAGE = 'sensor_msgs/msg/Image'


class Bridge:
    def __init__(self, url: str, hub: Hub, controller: FakeController) -> None:
        self.url, self.hub, self.controller = url, hub, controller
        self.ws_url = 'ws' + url[4:] + '/foxglove'
        self.wrench = next(c for c in hub.foxglove.channels.values() if c.topic == '/ft/wrench')
        self.image = next(c for c in hub.foxglove.channels.values()
                          if c.topic == '/camera/image_raw')

    def connect(self, subprotocol: str = SUBPROTOCOLS[0], **kwargs):
        kwargs.setdefault('additional_headers', {'Authorization': f'Bearer {TOKEN}'})
        return connect(self.ws_url, subprotocols=[subprotocol], max_size=None, compression=None,
                       **kwargs)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, headers={'Authorization': f'Bearer {TOKEN}'})


@pytest.fixture(scope='module')
def bridge() -> Iterator[Bridge]:
    hub = Hub(SETTINGS)
    for topic, type_name in (('/ft/wrench', WRENCH), ('/camera/image_raw', IMAGE),
                             ('/safety/worker_events', 'diagnostic_msgs/msg/DiagnosticStatus')):
        hub.foxglove.add_channel(topic, type_name, message_schema(type_name))
    controller = FakeController(
        {'camera': {'frame_rate': 30.0, 'width': 640, 'frame_id': 'cam'}},
        {'/ft/tare': (True, 'tared'), '/camera/start_recording': (False, 'no disk')},
        read_only=('width',))
    with serve(SETTINGS, controller, hub) as (url, _):
        yield Bridge(url, hub, controller)


async def _greeting(ws) -> dict[str, dict]:
    return {message['op']: message for message in
            [json.loads(await ws.recv()) for _ in range(3)]}


async def _next_json(ws, op: str) -> dict:
    while True:
        message = await asyncio.wait_for(ws.recv(), 5)
        if isinstance(message, str) and json.loads(message)['op'] == op:
            return json.loads(message)


async def _close_code(ws) -> tuple[int | None, str]:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    except ConnectionClosed:
        pass
    return ws.close_code, ws.close_reason


def test_each_subprotocol_gets_server_info_channels_and_services(bridge):
    async def run():
        sessions = set()
        for subprotocol in SUBPROTOCOLS:
            async with bridge.connect(subprotocol) as ws:
                assert ws.subprotocol == subprotocol
                greeting = await _greeting(ws)
                info = greeting['serverInfo']
                assert set(info['capabilities']) == {'parameters', 'services'}
                assert info['metadata']['ROS_DISTRO'] == 'jazzy' and info['sessionId']
                sessions.add(info['sessionId'])
                channels = {c['topic']: c for c in greeting['advertise']['channels']}
                assert channels['/ft/wrench']['schemaName'] == WRENCH
                assert channels['/ft/wrench']['encoding'] == 'cdr'
                assert 'MSG: geometry_msgs/Vector3' in channels['/ft/wrench']['schema']
                services = {s['name'] for s in greeting['advertiseServices']['services']}
                assert services == {'/manager/camera/restart', '/manager/ft/restart',
                                    '/camera/start_recording', '/camera/stop_recording',
                                    '/ft/tare'}
        assert len(sessions) == 1  # one per bridge start, not per connection

    asyncio.run(run())


def test_refused_connections_say_why(bridge):
    async def run():
        async with connect(bridge.ws_url + f'?token={TOKEN}') as ws:  # no subprotocol
            code, reason = await _close_code(ws)
            assert code == 4400 and 'foxglove.websocket.v1' in reason
        for headers, query in (({}, ''), ({'Authorization': 'Bearer nope'}, ''),
                               ({}, '?token=nope')):
            async with connect(bridge.ws_url + query, subprotocols=[SUBPROTOCOLS[1]],
                               additional_headers=headers) as ws:
                assert await _close_code(ws) == (1008, 'missing or wrong token')
        async with connect(bridge.ws_url + f'?token={TOKEN}', subprotocols=[SUBPROTOCOLS[0]],
                           origin='http://evil.example') as ws:
            assert await _close_code(ws) == (1008, 'origin not allowed')
        async with connect(bridge.ws_url + f'?token={TOKEN}', subprotocols=[SUBPROTOCOLS[0]],
                           origin='http://ops.example') as ws:
            assert 'serverInfo' in await _greeting(ws)
        async with bridge.connect(SUBPROTOCOLS[0]) as ws:
            await _greeting(ws)

    asyncio.run(run())


def _publish(bridge: Bridge, seconds: float, image_bytes: int = 0) -> int:
    """Push 1 kHz wrenches (and 30 fps images) from a thread, as the ROS thread does."""
    count = 0
    image = b'\x00\x01\x00\x00' + bytes(image_bytes)
    start = time.monotonic()
    while (now := time.monotonic()) - start < seconds:
        count += 1
        msg = WrenchStamped()
        msg.wrench.force.x = float(count)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 10**9)
        bridge.hub.foxglove.push(bridge.wrench, serialize_message(msg))
        if image_bytes and count % 33 == 0:
            bridge.hub.foxglove.push(bridge.image, image)
        time.sleep(max(0.0, start + count / 1000 - now))
    return count


def _subscribe(channels: dict[int, int]) -> str:
    return json.dumps({'op': 'subscribe', 'subscriptions': [
        {'id': sid, 'channelId': cid} for sid, cid in channels.items()]})


def test_bad_input_gets_a_status_and_the_connection_stays(bridge):
    bad = ['{', '[]', json.dumps({'op': 'fly'}), json.dumps({'op': 'advertise', 'channels': []}),
           _subscribe({0: 999}), json.dumps({'op': 'unsubscribe', 'subscriptionIds': [42]}),
           json.dumps({'op': 'subscribe', 'subscriptions': 'all'}),
           json.dumps({'op': 'getParameters', 'parameterNames': ['frame_rate']}),
           b'\x01\x00\x00\x00\x00data', b'\x09']

    async def run():
        async with bridge.connect() as ws, bridge.connect() as other:
            await _greeting(ws)
            await _greeting(other)
            for message in bad:
                await ws.send(message)
                status = await _next_json(ws, 'status')
                assert status['level'] == 2 and status['message'], message
            await ws.send(_subscribe({0: bridge.wrench.id}))
            await other.send(_subscribe({3: bridge.wrench.id}))
            await ws.send(_subscribe({0: bridge.image.id}))  # id 0 already used
            assert 'already in use' in (await _next_json(ws, 'status'))['message']
            publisher = asyncio.create_task(asyncio.to_thread(_publish, bridge, 1.0))
            data = await asyncio.wait_for(ws.recv(), 5)
            assert data[0] == 1 and struct.unpack_from('<I', data, 1) == (0,)
            # Over max_ws_message_bytes: this client is closed (1009), the other one not.
            await ws.send('x' * 2000)
            code, _ = await _close_code(ws)
            assert code == 1009
            await publisher
            received = 0
            while True:
                try:
                    data = await asyncio.wait_for(other.recv(), 0.5)
                except TimeoutError:
                    break
                received += 1
                assert struct.unpack_from('<I', data, 1) == (3,)
            assert received > 500

    asyncio.run(run())


def test_unsubscribe_stops_the_messages_and_the_hand_over(bridge):
    async def run():
        async with bridge.connect() as ws:
            await _greeting(ws)
            await ws.send(_subscribe({7: bridge.wrench.id}))
            publisher = asyncio.create_task(asyncio.to_thread(_publish, bridge, 1.5))
            data = await asyncio.wait_for(ws.recv(), 5)
            assert struct.unpack_from('<I', data, 1) == (7,)
            await ws.send(json.dumps({'op': 'unsubscribe', 'subscriptionIds': [7]}))
            await asyncio.sleep(0.2)  # what was sent before the unsubscribe arrived
            while True:
                try:
                    late = await asyncio.wait_for(ws.recv(), 0.1)
                except TimeoutError:
                    break
                assert isinstance(late, bytes), late  # no error status
            # No client wants the topic: the ROS side no longer hands it over.
            assert bridge.wrench.id not in bridge.hub.foxglove._wanted
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.5)
            await publisher

    asyncio.run(run())


def test_parameters_round_trip_through_the_validated_path(bridge):
    async def run():
        async with bridge.connect(SUBPROTOCOLS[1]) as ws:
            await _greeting(ws)
            await ws.send(json.dumps({'op': 'getParameters', 'parameterNames': [], 'id': 'all'}))
            answer = await _next_json(ws, 'parameterValues')
            assert answer['id'] == 'all'
            # ft's worker is down: its parameters are missing and a warning says why.
            assert {p['name'] for p in answer['parameters']} == {
                '/camera.frame_rate', '/camera.width', '/camera.frame_id'}
            await ws.send(json.dumps({'op': 'setParameters', 'id': 'set', 'parameters': [
                {'name': '/camera.frame_rate', 'value': 15}]}))
            answer = await _next_json(ws, 'parameterValues')
            assert answer == {'op': 'parameterValues', 'id': 'set', 'parameters': [
                {'name': '/camera.frame_rate', 'value': 15.0, 'type': 'float64'}]}
            assert bridge.controller.parameters['camera']['frame_rate'] == 15.0
            await ws.send(json.dumps({'op': 'setParameters', 'parameters': [
                {'name': '/camera.width', 'value': 320},
                {'name': '/camera.frame_id', 'value': 3}]}))
            error = (await _next_json(ws, 'status'))['message']
            assert 'read-only' in error and 'frame_id expects a string' in error
            await ws.send(json.dumps({'op': 'setParameters', 'parameters': [
                {'name': '/robot.x', 'value': 1}]}))
            assert 'unknown device' in (await _next_json(ws, 'status'))['message']
            await ws.send(json.dumps({'op': 'getParameters', 'parameterNames': ['/ft.port']}))
            assert 'not available' in (await _next_json(ws, 'status'))['message']

    asyncio.run(run())


def _call(service_id: int, call_id: int, encoding: str = 'cdr') -> bytes:
    return (struct.pack('<BIII', 2, service_id, call_id, len(encoding)) + encoding.encode()
            + b'\x00\x01\x00\x00\x00')


def test_service_calls_answer_or_fail(bridge):
    async def run():
        async with bridge.connect() as ws:
            services = {s['name']: s['id']
                        for s in (await _greeting(ws))['advertiseServices']['services']}
            await ws.send(_call(services['/ft/tare'], 1))
            answer = await asyncio.wait_for(ws.recv(), 5)
            assert struct.unpack_from('<BIII', answer) == (3, services['/ft/tare'], 1, 3)
            payload = answer[16:]
            assert payload[4] == 1 and payload[12:-1] == b'tared'
            await ws.send(_call(services['/camera/start_recording'], 2))
            answer = await asyncio.wait_for(ws.recv(), 5)
            assert answer[16 + 4] == 0 and answer[16 + 12:-1] == b'no disk'
            for call, expected in ((_call(services['/manager/ft/restart'], 3), 'not available'),
                                   (_call(99, 4), 'unknown service'),
                                   (_call(services['/ft/tare'], 5, 'json'), 'encoding')):
                await ws.send(call)
                failure = await _next_json(ws, 'serviceCallFailure')
                assert expected in failure['message']
                assert failure['callId'] == struct.unpack_from('<I', call, 5)[0]

    asyncio.run(run())


async def _stall(bridge: Bridge, seconds: float) -> None:
    """Be a Foxglove client that subscribes to wrench and images, then never reads again."""
    async with bridge.connect(close_timeout=0.1) as ws:
        await _greeting(ws)
        await ws.send(_subscribe({0: bridge.wrench.id, 1: bridge.image.id}))
        ws.transport.pause_reading()
        try:
            await asyncio.sleep(seconds)
        finally:
            ws.transport.abort()


def _metric(text: str, name: str, **labels: str) -> float:
    wanted = ','.join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    match = re.search(rf'^{name}\{{{re.escape(wanted)}\}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_a_stalled_client_loses_only_its_own_messages(bridge):
    seconds = 2.0

    async def run():
        stalled = asyncio.create_task(_stall(bridge, seconds + 30))
        async with bridge.connect() as ws:
            await _greeting(ws)
            await ws.send(_subscribe({5: bridge.wrench.id, 6: bridge.image.id}))
            await asyncio.sleep(0.3)  # both subscribed
            publisher = asyncio.create_task(
                asyncio.to_thread(_publish, bridge, seconds, 1 << 20))
            forces, frames = [], []
            last = time.monotonic()
            while not publisher.done() or time.monotonic() - last < 0.5:
                try:
                    data = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                last = time.monotonic()
                if struct.unpack_from('<I', data, 1)[0] == 5:
                    forces.append(deserialize_message(data[13:], WrenchStamped).wrench.force.x)
                else:
                    frames.append(last)
            published = await publisher
            status = await asyncio.to_thread(bridge.get, '/status')
            metrics = await asyncio.to_thread(bridge.get, '/metrics')
        stalled.cancel()
        await asyncio.gather(stalled, return_exceptions=True)
        return forces, frames, published, status.json(), metrics.text

    forces, frames, published, status, metrics = asyncio.run(run())
    # Every wrench in order, and images at the client's cap (10 fps of the 30 pushed).
    assert forces == [float(n) for n in range(1, published + 1)]
    assert 15 <= len(frames) <= 25, len(frames)
    Status.model_validate(status)  # what the OpenAPI document says, Foxglove clients included
    clients = {c['channels']['/ft/wrench']['subscription']: c for c in status['clients']}
    # The reading client lost no wrench (a frame may be superseded when it reads one late).
    assert clients[5]['channels']['/ft/wrench']['dropped'] == 0
    stuck = clients[0]
    channels = stuck['channels']
    assert channels['/ft/wrench']['dropped'] > 0 and channels['/ft/wrench']['queue_depth'] <= 500
    assert channels['/camera/image_raw']['queue_capacity'] == IMAGE_QUEUE_FRAMES
    assert stuck['dropped_by_reason']['queue_full'] == channels['/ft/wrench']['dropped']
    assert stuck['dropped_by_reason']['superseded'] > 0
    assert _metric(metrics, 'sensor_workers_bridge_dropped_messages_total',
                   reason='queue_full', topic='foxglove/ft/wrench') > 0
    assert _metric(metrics, 'sensor_workers_bridge_sent_messages_total',
                   topic='foxglove/ft/wrench') >= published
