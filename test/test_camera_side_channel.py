"""A real camera_node's side channel, read by a Python process: full rate, the DDS frames' pixels.

The reader is `python -m sensor_workers.side_channel.probe` in a process of its own; this
process subscribes to `/camera/image_raw` as any ROS node would and keeps a checksum of each
frame's pixels by stamp.
"""

import json
import threading
import zlib

import pytest
from sensor_msgs.msg import Image

from sensor_workers import qos
from sensor_workers.side_channel.layout import channel_path
from sensor_workers.testing.processes import ProcessGroup

pytestmark = pytest.mark.integration

SECONDS = 5.0


@pytest.mark.parametrize('size', [(2448, 2048)])
def test_a_side_channel_reader_gets_2448x2048_at_full_rate_with_the_pixels_of_the_dds_frames(
        tmp_path, ros_env, probe, size):
    width, height = size
    over_dds: dict[int, int] = {}
    lock = threading.Lock()

    def on_image(msg: Image) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        checksum = zlib.crc32(msg.data)
        with lock:
            over_dds[stamp] = checksum

    probe.node.create_subscription(Image, '/camera/image_raw', on_image, qos.SENSOR_DATA)
    group = ProcessGroup(tmp_path, ros_env)
    try:
        camera = group.start_python(
            'camera', 'sensor_workers.camera.node', '--ros-args', '-p', 'emulate:=true',
            '-p', f'width:={width}', '-p', f'height:={height}', '-p', 'autostart:=true')
        path = channel_path(int(ros_env['ROS_DOMAIN_ID']), '/camera')
        camera.wait_for_output(f'shared-memory side channel {path}', timeout=30.0)
        reader = group.start_python('reader', 'sensor_workers.side_channel.probe', '/camera',
                                    '--seconds', str(SECONDS), '--checksums')
        assert reader.popen.wait(60) == 0, reader.tail()
        result = json.loads(reader.output().strip().splitlines()[-1])
    finally:
        group.stop_all()
    assert not path.exists()  # the camera removed it on its clean stop
    figures = {k: v for k, v in result.items() if k != 'checksums'}
    assert result['fps'] >= 28.5, figures
    side = {int(stamp): checksum for stamp, checksum in result['checksums'].items()}
    with lock:
        common = side.keys() & over_dds.keys()
        differing = [stamp for stamp in common if side[stamp] != over_dds[stamp]]
    assert len(common) >= 0.5 * len(side), (len(common), len(side), len(over_dds), figures)
    assert not differing, f'{len(differing)} of {len(common)} frames differ'
