"""`WS /foxglove` against real workers, with the Foxglove ecosystem's own client.

The F/T worker (built-in simulator, ~1 kHz) and the emulated camera (640x480 Mono8, 30 fps)
run on their own (`autostart`), the bridge beside them; test/foxglove_client/client.mjs is
`@foxglove/ws-protocol`'s FoxgloveClient with `@foxglove/rosmsg` and
`@foxglove/rosmsg2-serialization` (pinned by its package-lock.json; `make test` runs `npm ci`).
It decodes every message with the schema the bridge advertised. Rates are compared with a
direct ROS subscriber over the same stamp range.
"""

import asyncio
from collections.abc import Iterator
import json
import logging
import os
from pathlib import Path
import shutil
import subprocess

from bridge_helpers import Bridge
from geometry_msgs.msg import WrenchStamped
import pytest
from sensor_msgs.msg import Image
from websockets.asyncio.client import connect

from sensor_workers import qos
from sensor_workers.lifetime import tied_command
from sensor_workers.paths import config_file
from sensor_workers.testing.processes import ProcessGroup
from sensor_workers.testing.ros_probe import RosProbe
from sensor_workers.testing.waiting import wait_until

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)
CLIENT = Path(__file__).resolve().parent / 'foxglove_client'
NODE = shutil.which('node')
TOKEN = 'fox-token'
SUBPROTOCOLS = ('foxglove.websocket.v1', 'foxglove.sdk.v1')
SECONDS = 3.0
if NODE is None or not (CLIENT / 'node_modules' / '@foxglove' / 'ws-protocol').is_dir():
    pytest.skip('node or the npm packages are missing: run `make test` (npm ci)',
                allow_module_level=True)


class Cell:
    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        self.group = ProcessGroup(directory, env)
        self.probe = RosProbe('foxglove_probe')
        self.wrench = self.probe.collect(WrenchStamped, '/ft/wrench', qos.WRENCH_READER)
        self.images = self.probe.collect(Image, '/camera/image_raw', qos.IMAGE_READER)
        self.group.start_python(
            'ft', 'sensor_workers.ft.node', '--ros-args', '-p', 'port:=sim',
            '-p', 'sinc_length:=51', '-p', 'autostart:=true',
            '-p', 'qos_overrides./ft/wrench.publisher.depth:=1000')
        self.group.start_python(
            'camera', 'sensor_workers.camera.node', '--ros-args',
            '--params-file', str(config_file('sim.yaml')), '-p', 'autostart:=true',
            '-p', 'width:=640', '-p', 'height:=480',
            '-p', f'recording_dir:={directory / "recordings"}',
            env={'PYLON_CAMEMU': '1'})
        # The cap above the camera's 30 fps: frames that a loaded host delivers in bursts (3
        # within 20 ms after a 100 ms gap) are all the source's, not over a per-client cap
        # (test_bridge_foxglove_routes.py checks the cap).
        self.bridge = Bridge(self.group, 'send_buffer_bytes:=131072',
                             'foxglove_image_max_fps:=60.0', token=TOKEN)
        wait_until(lambda: self.wrench.count() > 500 and self.images.count() > 10, 30,
                   'wrenches and frames from the workers')

    def url(self, token: str = TOKEN) -> str:
        return f'{self.bridge.ws_url}/foxglove?token={token}'


@pytest.fixture(scope='module')
def cell(tmp_path_factory: pytest.TempPathFactory, ros_env) -> Iterator[Cell]:
    running = None
    try:
        running = Cell(tmp_path_factory.mktemp('foxglove'), ros_env)
        yield running
    finally:
        if running is not None:
            running.group.stop_all()
            running.probe.close()


def _start_client(options: dict) -> subprocess.Popen:
    return subprocess.Popen(tied_command([NODE, str(CLIENT / 'client.mjs'), json.dumps(options)]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=CLIENT, env={**os.environ, 'NODE_NO_WARNINGS': '1'})


def _events(process: subprocess.Popen, timeout: float = 30.0) -> list[dict]:
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr
    return [json.loads(line) for line in stdout.splitlines()]


def _one(events: list[dict], kind: str) -> dict:
    found = [e for e in events if e['event'] == kind]
    assert len(found) == 1, (kind, events)
    return found[0]


def _stamps(pairs: list[list[int]]) -> list[int]:
    return [sec * 1_000_000_000 + nanosec for sec, nanosec in pairs]


def _image_counters(bridge: Bridge) -> dict[str, float]:
    """Return the bridge's counters of the Foxglove image channel (received, sent, drops)."""
    counters = {}
    for line in bridge.get('/metrics').text.splitlines():
        if 'topic="foxglove/camera/image_raw"' in line and not line.startswith('#') and \
                ('_messages_total' in line):
            name, value = line.rsplit(' ', 1)
            counters[name.replace('sensor_workers_bridge_', '')] = float(value)
    return counters


def _assert_source_rate(topic: str, stamps: list[int], received, minimum: int,
                        where: object = None) -> None:
    """Check the client got 95 % or more of what a direct subscriber got in its stamp range."""
    assert len(stamps) > minimum and len(set(stamps)) == len(stamps)
    messages, _ = received.snapshot()
    reference = sum(1 for m in messages
                    if stamps[0] <= m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
                    <= stamps[-1])
    span_s = (stamps[-1] - stamps[0]) / 1e9
    log.info('%s: client %d, direct subscriber %d in %.2f s (%.1f/s)', topic, len(stamps),
             reference, span_s, len(stamps) / span_s)
    # A string, not a tuple: pytest shortens the repr of a tuple message, and the counters in
    # `where` are what tells a lagging client from frames the bridge never got.
    assert len(stamps) >= 0.95 * reference, f'{len(stamps)} of {reference}; {where}'


async def _stall(url: str, seconds: float) -> None:
    """Be a Foxglove client that subscribes to every channel, then never reads again."""
    async with connect(url, subprotocols=[SUBPROTOCOLS[1]], max_size=None, compression=None,
                       close_timeout=0.1) as ws:
        channels = []
        while not channels:
            message = json.loads(await ws.recv())
            if message['op'] == 'advertise':
                channels = [c['id'] for c in message['channels']]
        await ws.send(json.dumps({'op': 'subscribe', 'subscriptions': [
            {'id': cid, 'channelId': cid} for cid in channels]}))
        ws.transport.pause_reading()
        try:
            await asyncio.sleep(seconds)
        finally:
            ws.transport.abort()


def test_each_subprotocol_decodes_everything_at_the_source_rate_beside_a_stalled_client(cell):
    async def run():
        stalled = asyncio.create_task(_stall(cell.url(), 60))
        await asyncio.sleep(0.5)  # stalled before the others start
        clients = [_start_client({'url': cell.url(), 'subprotocol': subprotocol,
                                  'seconds': SECONDS,
                                  'topics': ['/ft/wrench', '/camera/image_raw']})
                   for subprotocol in SUBPROTOCOLS]
        events = await asyncio.gather(*(asyncio.to_thread(_events, c) for c in clients))
        status = await asyncio.to_thread(cell.bridge.status)
        stalled.cancel()
        await asyncio.gather(stalled, return_exceptions=True)
        return events, status

    before = _image_counters(cell.bridge)
    events, status = asyncio.run(run())
    after = _image_counters(cell.bridge)
    # Where frames went, for a failure: what the bridge received, sent and dropped meanwhile.
    image_counters = {name: after[name] - before.get(name, 0.0) for name in after}
    for subprotocol, received in zip(SUBPROTOCOLS, events, strict=True):
        assert _one(received, 'open')['protocol'] == subprotocol
        info = _one(received, 'serverInfo')
        assert info['metadata'] == {'ROS_DISTRO': 'jazzy'} and info['sessionId']
        assert {'parameters', 'services'} <= set(info['capabilities'])
        assert not [e for e in received if e['event'] in ('error', 'status')], received
        topics = _one(received, 'summary')['topics']
        wrench, image = topics['/ft/wrench'], topics['/camera/image_raw']
        assert wrench['failed'] == 0 and image['failed'] == 0
        assert wrench['encoding'] == 'cdr' and image['schemaName'] == 'sensor_msgs/msg/Image'
        assert image['checks'][0] == {'width': 640, 'height': 480, 'step': 640,
                                      'encoding': 'mono8', 'bytes': 640 * 480}
        _assert_source_rate('wrench', _stamps(wrench['stamps']), cell.wrench, int(SECONDS * 500))
        _assert_source_rate('image', _stamps(image['stamps']), cell.images, int(SECONDS * 15),
                            image_counters)
    # The stalled client lost only its own messages, and they are counted.
    stuck = [c for c in status['clients'] if c['topic'] == 'foxglove']
    assert len(stuck) == 1, status['clients']
    channels = stuck[0]['channels']
    assert channels['/ft/wrench']['dropped'] > 0
    assert stuck[0]['dropped_by_reason'].get('superseded', 0) > 0


def test_parameters_and_a_service_round_trip(cell):
    events = _events(_start_client({
        'url': cell.url(), 'subprotocol': SUBPROTOCOLS[0],
        'getParameters': ['/camera.frame_rate', '/ft.sinc_length'],
        'setParameters': [{'name': '/camera.gain_db', 'value': 3, 'type': 'float64'}],
        'services': ['/ft/tare'], 'topics': []}), timeout=30)
    answers = {e['id']: e['parameters'] for e in events if e['event'] == 'parameterValues'}
    assert {p['name']: p for p in answers['get']} == {
        '/camera.frame_rate': {'name': '/camera.frame_rate', 'value': 30.0, 'type': 'float64'},
        '/ft.sinc_length': {'name': '/ft.sinc_length', 'value': 51}}
    assert answers['set'] == [{'name': '/camera.gain_db', 'value': 3.0, 'type': 'float64'}]
    tare = _one(events, 'serviceResponse')
    assert tare['name'] == '/ft/tare' and tare['encoding'] == 'cdr'
    assert tare['response'] == {'success': True, 'message': tare['response']['message']}


def test_a_wrong_token_is_refused(cell):
    for token in ('nope', ''):
        events = _events(_start_client({'url': cell.url(token), 'subprotocol': SUBPROTOCOLS[1],
                                        'topics': ['/ft/wrench']}))
        close = _one(events, 'close')
        assert (close['code'], close['reason']) == (1008, 'missing or wrong token')
        assert not [e for e in events if e['event'] == 'serverInfo']
