"""The hub's image streams, per camera, no ROS: each frame reaches only its camera's clients."""

import asyncio
import time

import pytest

from sensor_workers.bridge import imaging
from sensor_workers.bridge.hub import Hub, ImageOptions
from sensor_workers.bridge.images import ImageStream
from sensor_workers.bridge.routes.ws import BAD_REQUEST, Refused, image_device
from sensor_workers.bridge.settings import BridgeSettings

CAMERAS = ('camera', 'camera_left')


def frame(seq: int, width: int = 8, height: int = 4) -> imaging.Frame:
    return imaging.Frame(seq=seq, stamp_ns=time.time_ns(), width=width, height=height,
                         encoding='mono8', step=width, data=bytes(width * height))


def test_camera_topics_and_default_camera():
    assert BridgeSettings().camera_topics() == {'camera': '/camera/image_raw'}
    two = BridgeSettings(cameras=CAMERAS)
    assert two.camera_topics() == {'camera': '/camera/image_raw',
                                   'camera_left': '/camera_left/image_raw'}
    assert two.default_camera == 'camera'
    # image_topic (a remap of today's single camera) names the first camera's topic.
    remapped = BridgeSettings(cameras=CAMERAS, image_topic='/cam/image')
    assert remapped.camera_topics()['camera'] == '/cam/image'
    assert remapped.camera_topics()['camera_left'] == '/camera_left/image_raw'
    # An empty ROS string array comes as [''].
    none = BridgeSettings(cameras=[''])
    assert none.camera_topics() == {} and none.default_camera is None


def test_stream_take_counts_the_frames_it_never_saw():
    stream = ImageStream('camera_left', '/camera_left/image_raw', 10)
    assert stream.take() is None
    for seq in (1, 2, 3):
        stream.push(frame(seq), 0.002, time.monotonic())
    taken, new = stream.take()
    assert (taken.seq, new, stream.frames_skipped) == (3, 3, 2)
    assert stream.take() is None  # nothing new since
    stream.push(frame(4), 0.002, time.monotonic())
    assert stream.take()[0].seq == 4 and stream.frames_skipped == 2
    assert stream.latency.summary(time.monotonic(), 10)['count'] == 4


def test_image_device_defaults_to_the_first_camera_and_refuses_others():
    hub = Hub(BridgeSettings(cameras=CAMERAS))
    params = {'device': 'camera_left', 'max_fps': '5'}
    assert image_device(params, hub) == 'camera_left'
    assert params == {'max_fps': '5'}  # left for image_options
    assert image_device({}, hub) == 'camera'
    with pytest.raises(Refused) as refused:
        image_device({'device': 'ft'}, hub)
    assert refused.value.code == BAD_REQUEST
    assert refused.value.reason == 'device must be one of camera, camera_left'
    with pytest.raises(Refused, match='no camera'):
        image_device({}, Hub(BridgeSettings(cameras=[''])))


def test_each_camera_reaches_only_its_own_clients():
    async def run() -> None:
        hub = Hub(BridgeSettings(cameras=CAMERAS))
        await hub.start()
        try:
            options = ImageOptions(max_fps=1000.0, max_width=0, format='raw')
            right = hub.register('image', 'a', options)
            left = hub.register('image', 'b', options, device='camera_left')
            left_too = hub.register('image', 'c', options, device='camera_left')
            assert (right.device, left.device) == ('camera', 'camera_left')
            hub.push_image('camera_left', frame(7, width=16))
            got = await asyncio.wait_for(left.queue.get(), 2)
            assert (got.seq, got.width) == (7, 16)
            assert (await asyncio.wait_for(left_too.queue.get(), 2)) is got  # encoded once
            assert len(right.queue) == 0
            hub.push_image('camera', frame(1, width=8))
            assert (await asyncio.wait_for(right.queue.get(), 2)).width == 8
            await asyncio.sleep(0.05)
            assert len(left.queue) == 0
            status = hub.status()
            assert status['bridge']['cameras'] == list(CAMERAS)
            assert status['bridge']['frames_received'] == 2
            assert {c['device'] for c in status['clients']} == {'camera', 'camera_left'}
            assert status['latency']['camera_left']['topic'] == '/camera_left/image_raw'
            assert status['latency']['camera_left']['count'] == 1
            assert status['latency']['camera']['count'] == 1
        finally:
            await hub.stop()

    asyncio.run(run())
