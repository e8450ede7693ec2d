"""The bridge against the real stack: manager, emulated camera, simulated F/T sensor.

The manager spawns the camera worker (pypylon emulator) and the F/T worker (`port: sim`); the
clients are real websocket clients of a real uvicorn.

One stack serves the whole module; the tests that restart or kill a worker come last.
"""

import asyncio
from collections.abc import Iterator
import os
from pathlib import Path
import re
import signal
import statistics
import time

from bridge_helpers import NOT_YET, Bridge, Stream, receive, stalled
from geometry_msgs.msg import WrenchStamped
from manager_helpers import available_devices, start_manager, write_config
import pytest
from sensor_msgs.msg import Image

from sensor_workers import qos
from sensor_workers.bridge.schemas import Status
from sensor_workers.side_channel.layout import channel_path
from sensor_workers.testing.processes import ProcessGroup
from sensor_workers.testing.ros_probe import RosProbe
from sensor_workers.testing.waiting import wait_until

pytestmark = pytest.mark.integration
DEVICES = available_devices()
needs_camera = pytest.mark.skipif('camera' not in DEVICES, reason='camera worker not in tree')
needs_ft = pytest.mark.skipif('ft' not in DEVICES, reason='ft worker not in tree')


class Stack:
    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        self.directory = directory
        self.recordings = directory / 'recordings'
        self.group = ProcessGroup(directory, env)
        self.config = write_config(
            # Generous timeouts: the CI machine is shared and a starved worker must not be
            # restarted in the middle of a rate measurement.
            directory, {'devices': DEVICES, 'heartbeat_timeout_ms': 1500,
                        'stall_timeout_ms': 5000},
            {'ft': {'port': 'sim', 'backend': 'builtin', 'sinc_length': 51,
                    # A late best-effort reader over shared memory takes samples from the
                    # writer's history: the sensor-data depth of 5 loses most of 1 kHz.
                    'qos_overrides./ft/wrench.publisher.depth': 1000},
             'camera': {'emulate': True, 'frame_rate': 30.0, 'width': 640, 'height': 480,
                        'pixel_format': 'Mono8', 'recording_dir': str(self.recordings)}})
        self.probe = RosProbe('bridge_stack_probe')
        # The reference: what a direct ROS subscriber gets of the same topic.
        self.wrench = self.probe.collect(WrenchStamped, '/ft/wrench', qos.WRENCH_READER)
        self.images = self.probe.collect(Image, '/camera/image_raw', qos.IMAGE_READER)
        self.manager = start_manager(self.group, self.config)
        self.bridge = Bridge(self.group, f'devices:={list(DEVICES)}', 'send_buffer_bytes:=131072',
                             'wrench_queue_batches:=10', params_file=str(self.config))

    def device(self, name: str) -> dict:
        return self.bridge.status()['devices'][name]

    def wait_active(self, timeout: float = 60.0, not_pid: dict | None = None) -> None:
        def ready() -> bool:
            # From the manager's verdict: the bridge shows the heartbeats' view until its first
            # /manager/device_states arrives, and the tests here check the manager's. The
            # bridge's own heartbeat subscription may match a moment after the manager's latched
            # states (seen: source 'manager', heartbeat_age_ms None), so wait for a beat too.
            devices = self.bridge.status()['devices']
            return all(devices[d]['source'] == 'manager' and devices[d]['state'] == 'active'
                       and devices[d]['up'] and devices[d]['rate_hz'] > 0
                       and devices[d]['heartbeat_age_ms'] is not None
                       and devices[d]['pid'] != (not_pid or {}).get(d) for d in DEVICES)

        wait_until(ready, timeout, f'{DEVICES} active (says the manager) and beating',
                   tolerate=NOT_YET)


@pytest.fixture(scope='module')
def stack(tmp_path_factory: pytest.TempPathFactory, ros_env) -> Iterator[Stack]:
    running = Stack(tmp_path_factory.mktemp('bridge_stack'), ros_env)
    try:
        running.wait_active()
        yield running
    finally:
        running.group.stop_all()
        running.probe.close()


def test_status_shows_every_device(stack):
    status = stack.bridge.status()
    assert status['bridge']['manager_alive']
    for name in DEVICES:
        device = status['devices'][name]
        assert device['source'] == 'manager' and device['level'] == 'ok'
        assert device['heartbeat_age_ms'] < 2000 and device['pid'] > 0
        assert isinstance(device['restarts'], int) and not device['degraded']

    def measured() -> bool:
        # Over half a second of 1 kHz samples: the bridge may have started receiving just now.
        latency = stack.bridge.status()['latency']
        return all(latency[name]['count'] > (500 if name == 'ft' else 0) for name in DEVICES)

    # The age of each device's data on arrival, from the bridge's own receipt.
    wait_until(measured, 10, 'latency figures of every device')
    latency = stack.bridge.status()['latency']
    for name in DEVICES:
        assert 0 < latency[name]['p50_ms'] <= latency[name]['p99_ms'] < 5000, latency
    if 'ft' in DEVICES:
        assert latency['ft']['topic'] == '/ft/wrench'
    # The workers' own /diagnostics (1 Hz) reach the device records.
    wait_until(lambda: all(stack.device(name)['diagnostics'] for name in DEVICES), 5,
               "every worker's /diagnostics")
    # With real devices behind it, /status is what its OpenAPI document says.
    Status.model_validate(stack.bridge.status())


def _assert_delivers_the_source(stack: Stack, stream: Stream) -> None:
    """Check the client got 95% or more of what a direct subscriber got in its stamp range."""
    stamps = stream.stamps
    assert len(stamps) > 100 and len(set(stamps)) == len(stamps)
    messages, _ = stack.wrench.snapshot()
    first, last = stamps[0], stamps[-1]
    reference = sum(1 for m in messages
                    if first <= m.header.stamp.sec * 10**9 + m.header.stamp.nanosec <= last)
    assert len(stamps) >= 0.95 * reference, (len(stamps), reference)
    assert stream.dropped == 0


def _assert_kept_pace(stream: Stream, seconds: float) -> None:
    """Check that a client's samples span 90% of its window in the source's time.

    A client slowed by the stalled one falls behind the source. Counted by source stamps, not
    samples per arrival window: under load one client's window began with a backlog that it
    then drained (4515 against 3851 samples in 4 s, neither of them slowed).
    """
    span_s = (stream.stamps[-1] - stream.stamps[0]) / 1e9
    assert span_s >= 0.9 * seconds, f'{span_s:.2f} s of the source in a {seconds} s window'


def _assert_all_frames(stack: Stack, stream: Stream, share: float = 0.8) -> None:
    """Check the client got `share` of the frames a direct subscriber got in its stamp range."""
    stamps = [h['stamp_ns'] for h in stream.headers]
    assert len(stamps) > 10
    messages, _ = stack.images.snapshot()
    reference = sum(1 for m in messages if stamps[0] <= m.header.stamp.sec * 10**9
                    + m.header.stamp.nanosec <= stamps[-1])
    bridge = stack.bridge.status()['bridge']
    assert len(stamps) >= share * reference, (len(stamps), reference, bridge['frames_received'],
                                              bridge['frames_skipped'])


@needs_ft
def test_wrench_rate_matches_the_sensor(stack):
    async def run():
        return await asyncio.gather(*(receive(stack.bridge.ws('/ws/wrench'), 3.0, warmup=0.5)
                                      for _ in range(2)))

    for stream in asyncio.run(run()):
        _assert_delivers_the_source(stack, stream)
        assert statistics.median(stream.latency_s) < 1.0  # generous: a shared, loaded CI host


@needs_ft
def test_a_stalled_client_slows_nobody(stack):
    """Stalled wrench and image clients: the others keep the source rate; its drops counted."""
    seconds = 4.0

    async def run():
        idle = [asyncio.create_task(stalled(stack.bridge.ws('/ws/wrench'), seconds + 60))]
        if 'camera' in DEVICES:
            idle.append(asyncio.create_task(
                stalled(stack.bridge.ws('/ws/image', format='raw'), seconds + 60)))
        normal = [receive(stack.bridge.ws('/ws/wrench'), seconds, warmup=0.5)
                  for _ in range(2)]
        if 'camera' in DEVICES:
            normal.append(receive(stack.bridge.ws('/ws/image', format='raw'), seconds,
                                  warmup=0.5))
        streams = await asyncio.gather(*normal)
        status = await asyncio.to_thread(stack.bridge.status)
        for task in idle:
            task.cancel()
        await asyncio.gather(*idle, return_exceptions=True)
        return streams, status

    streams, status = asyncio.run(run())
    for stream in streams[:2]:
        _assert_delivers_the_source(stack, stream)
        _assert_kept_pace(stream, seconds)
    if 'camera' in DEVICES:
        _assert_all_frames(stack, streams[2])
    stuck = status['clients']  # the others have left already
    assert any(c['topic'] == 'wrench' and c['dropped_by_reason'].get('queue_full')
               for c in stuck), stuck
    if 'camera' in DEVICES:
        assert any(c['topic'] == 'image' and c['dropped_by_reason'].get('superseded')
                   for c in stuck), stuck


def _metric(text: str, name: str, **labels: str) -> float:
    selector = ','.join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name + (f'{{{selector}}}' if labels else '')) + r' ([0-9.e+-]+)'
    match = re.search(pattern, text)
    assert match, f'{name} {labels} not in /metrics'
    return float(match.group(1))


@needs_ft
def test_metrics_present_and_changing(stack):
    before = stack.bridge.get('/metrics').text
    asyncio.run(receive(stack.bridge.ws('/ws/wrench'), 1.0))
    after = stack.bridge.get('/metrics').text
    for name in ('sensor_workers_bridge_latency_seconds_bucket',
                 'sensor_workers_bridge_dropped_messages_total',
                 'sensor_workers_bridge_queue_depth', 'sensor_workers_device_up',
                 'sensor_workers_device_restarts', 'sensor_workers_device_heartbeat_age_seconds'):
        assert name in after
    for name in ('sensor_workers_bridge_received_messages_total',
                 'sensor_workers_bridge_sent_messages_total',
                 'sensor_workers_bridge_latency_seconds_count'):
        assert _metric(after, name, topic='wrench') > _metric(before, name, topic='wrench') \
            if name in before else _metric(after, name, topic='wrench') > 0
    assert _metric(after, 'sensor_workers_device_up', device='ft') == 1.0


@needs_ft
def test_tare_and_parameters_through_http(stack):
    answer = stack.bridge.post('/devices/ft/tare')
    assert answer.status_code == 200 and answer.json()['success'], answer.text
    applied = stack.bridge.post('/devices/ft/params', json={'publish_temperature': True})
    assert applied.status_code == 200, applied.text
    assert applied.json()['results']['publish_temperature']['status'] == 'applied'
    refused = stack.bridge.post('/devices/ft/params', json={'sinc_length': 5})
    assert refused.status_code == 409
    assert refused.json()['results']['sinc_length']['status'] == 'refused'
    assert refused.json()['results']['sinc_length']['reason']
    invalid = stack.bridge.post('/devices/ft/params', json={'no_such_parameter': 1})
    assert invalid.status_code == 422 and 'not a declared' in invalid.json()['detail']


@needs_camera
def test_image_rate_size_and_format(stack):
    frame_hz = stack.device('camera')['rate_hz']

    async def run():
        return await asyncio.gather(
            receive(stack.bridge.ws('/ws/image'), 3.0, warmup=0.5),
            receive(stack.bridge.ws('/ws/image', max_width=320, max_fps=10), 3.0, warmup=0.5),
            receive(stack.bridge.ws('/ws/image', format='raw'), 3.0, warmup=0.5))

    full, small, raw = asyncio.run(run())
    # The camera runs on this host: its frames come through its shared-memory side channel.
    assert stack.bridge.status()['bridge']['image_sources'] == {'camera': 'side_channel'}
    _assert_all_frames(stack, full)
    assert full.headers[-1]['format'] == 'jpeg' and full.headers[-1]['width'] == 640
    assert small.frame_rate() == pytest.approx(min(10.0, frame_hz), rel=0.15)
    assert small.headers[-1]['width'] <= 320
    assert raw.headers[-1]['format'] == 'raw' and raw.headers[-1]['encoding'] == 'mono8'
    assert raw.bytes / raw.messages > 640 * 480


@needs_camera
def test_frame_rate_change_shows_in_delivered_rate(stack):
    answer = stack.bridge.post('/devices/camera/params', json={'frame_rate': 10})
    assert answer.status_code == 200, answer.text
    assert answer.json()['results']['frame_rate']['status'] == 'applied'
    try:
        time.sleep(0.5)
        stream = asyncio.run(receive(stack.bridge.ws('/ws/image'), 3.0, warmup=0.5))
        assert stream.frame_rate() == pytest.approx(10.0, rel=0.2)
        _assert_all_frames(stack, stream)
    finally:
        stack.bridge.post('/devices/camera/params', json={'frame_rate': 30.0})
    refused = stack.bridge.post('/devices/camera/params', json={'frame_rate': -5})
    assert refused.status_code == 409 and refused.json()['detail']


@needs_camera
def test_recording_through_http_produces_a_file(stack):
    start = stack.bridge.post('/devices/camera/recording', json={'action': 'start'})
    assert start.status_code == 200, start.text
    # What the dashboard shows: the camera's own /diagnostics say it records, and where.
    wait_until(lambda: stack.device('camera')['diagnostics'].get('recording') is True, 5,
               'recording in the camera diagnostics')
    path = stack.device('camera')['diagnostics']['recording_path']
    assert path.startswith(str(stack.recordings)) and path in start.json()['message']
    time.sleep(1.0)
    stop = stack.bridge.post('/devices/camera/recording', json={'action': 'stop'})
    assert stop.status_code == 200, stop.text
    files = [p for p in stack.recordings.rglob('*') if p.is_file()]
    assert files and max(p.stat().st_size for p in files) > 10_000


@needs_ft
def test_restart_through_http(stack):
    pid = stack.device('ft')['pid']
    answer = stack.bridge.post('/devices/ft/restart')
    assert answer.status_code == 200 and answer.json()['success'], answer.text
    stack.wait_active(not_pid={'ft': pid})
    assert stack.device('ft')['restarts'] >= 1


@needs_ft
def test_killed_worker_shows_down_and_its_stream_resumes(stack):
    pid = stack.device('ft')['pid']
    logs: dict[str, list[tuple[float, dict]]] = {'warn': [], 'info': []}

    async def collect_logs(level: str, ready: asyncio.Event, stop: asyncio.Event) -> None:
        import json

        from websockets.asyncio.client import connect

        query = {} if level == 'warn' else {'log_level': level}  # warn is the default
        async with connect(stack.bridge.ws('/ws/events', **query)) as events:
            assert json.loads(await events.recv())['type'] == 'device_states'
            ready.set()
            while not stop.is_set():
                try:
                    message = json.loads(await asyncio.wait_for(events.recv(), 0.2))
                except TimeoutError:
                    continue
                if message['type'] == 'log':
                    logs[level].append((time.monotonic(), message))

    async def run():
        import json

        from websockets.asyncio.client import connect

        async with connect(stack.bridge.ws('/ws/events')) as events:
            assert json.loads(await events.recv())['type'] == 'device_states'
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            seen_down, kinds = False, set()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                message = json.loads(await asyncio.wait_for(events.recv(), 30))
                if message['type'] == 'device_state' and message['name'] == 'ft':
                    seen_down |= not message['data']['up']
                    if seen_down and message['data']['up'] \
                            and message['data']['state'] == 'active':
                        break
                elif message['type'] == 'event' and message['name'] == 'ft':
                    kinds.add(message['event'])
            return seen_down, kinds, killed

    def down() -> bool:
        device = stack.device('ft')
        return not device['up'] and device['state'] != 'active'

    loop_result: dict = {}

    async def both():
        stop = asyncio.Event()
        readers = []
        for level in logs:
            ready = asyncio.Event()
            readers.append(asyncio.create_task(collect_logs(level, ready, stop)))
            await asyncio.wait_for(ready.wait(), 10)
        task = asyncio.create_task(run())
        loop_result['down'] = await asyncio.to_thread(
            wait_until, down, 15, 'ft down', 0.02, NOT_YET)
        loop_result['events'] = await task
        stop.set()
        await asyncio.gather(*readers)

    asyncio.run(both())
    seen_down, kinds, killed = loop_result['events']
    assert loop_result['down'] and seen_down
    assert kinds & {'exited', 'heartbeat_missed', 'restarting'}, kinds

    # The manager's log reached the web clients, each at its level.
    def about_the_kill(level: str, text: str) -> list[float]:
        return [at - killed for at, line in logs[level] if line['node'] == 'manager'
                and line['text'].startswith(f'ft: {text}') and at >= killed]

    warned = about_the_kill('warn', 'restarting: ')
    assert warned and warned[0] < 3.0, logs['warn']
    print(f"the manager's warning reached /ws/events {warned[0] * 1000:.0f} ms after the kill")
    assert about_the_kill('info', f'pid {pid} exited with code -9'), logs['info']
    assert not about_the_kill('warn', f'pid {pid} exited'), 'an info line at warn level'
    assert all(line['level'] in ('warn', 'error', 'fatal') for _, line in logs['warn'])
    assert set(logs['info'][0][1]) == {'type', 'node', 'level', 'text', 'stamp_ns'}
    manager_lines = stack.bridge.status()['logs']['manager']['lines']
    assert any(line['text'].startswith('ft: restarting: ') for line in manager_lines)

    stack.wait_active(not_pid={'ft': pid})
    stream = asyncio.run(receive(stack.bridge.ws('/ws/wrench'), 1.0, warmup=0.3))
    assert stream.samples > 100


@needs_camera
def test_a_killed_camera_is_read_from_the_same_side_channel_once_its_standby_takes_over(stack):
    stack.wait_active()  # the kill before this one may still show
    path = channel_path(stack.probe.node.context.get_domain_id(), '/camera')
    inode = path.stat().st_ino
    pid = stack.device('camera')['pid']
    generation = stack.device('camera')['diagnostics']['side_channel_generation']
    os.kill(pid, signal.SIGKILL)
    stack.wait_active(not_pid={'camera': pid})
    # The successor took the file over (same inode, a new generation) and the bridge reads it.
    assert path.stat().st_ino == inode
    wait_until(lambda: stack.bridge.status()['bridge']['image_sources']['camera']
               == 'side_channel', 10, 'the bridge on the side channel')
    stream = asyncio.run(receive(stack.bridge.ws('/ws/image', format='raw'), 1.0, warmup=0.3))
    assert stream.messages >= 10
    wait_until(lambda: stack.device('camera')['diagnostics']['side_channel_generation']
               > generation, 5, 'a new generation in the camera diagnostics')
