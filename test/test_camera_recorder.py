"""The MCAP recorder on its own: ROS 2 schemas readable by mcap_ros2, bounded queue, drops."""

import array
import threading

from mcap_ros2.reader import read_ros2_messages
from rclpy.serialization import serialize_message
from sensor_msgs.msg import CameraInfo, Image

from sensor_workers.camera.recorder import Record, Recorder


def image(i: int) -> Image:
    msg = Image()
    msg.header.stamp.sec = 100 + i
    msg.header.frame_id = 'cam'
    msg.height, msg.width, msg.encoding, msg.step = 4, 6, 'rgb8', 18
    msg.data = array.array('B', bytes([i]) * 72)
    return msg


def test_recording_is_readable_as_ros2_mcap(tmp_path):
    recorder = Recorder(serialize_message)
    path = recorder.start(tmp_path / 'rec', prefix='cam')
    assert recorder.recording and path.parent == tmp_path / 'rec'
    for i in range(5):
        info = CameraInfo(width=6, height=4)
        info.header.stamp.sec = 100 + i
        assert recorder.submit((100 + i) * 10**9, [
            Record('/cam/image_raw', 'sensor_msgs/msg/Image', image(i)),
            Record('/cam/camera_info', 'sensor_msgs/msg/CameraInfo', info)])
    summary = recorder.stop()
    assert (summary.path, summary.frames, summary.dropped) == (path, 5, 0)
    assert not recorder.recording and recorder.stop() is None
    messages = list(read_ros2_messages(path))
    images = [m for m in messages if m.channel.topic == '/cam/image_raw']
    assert [m.ros_msg.header.stamp.sec for m in images] == [100, 101, 102, 103, 104]
    assert images[2].ros_msg.encoding == 'rgb8' and images[2].ros_msg.data == bytes([2]) * 72
    assert images[2].log_time_ns == 102 * 10**9
    infos = [m for m in messages if m.channel.topic == '/cam/camera_info']
    assert [m.ros_msg.width for m in infos] == [6] * 5


def test_full_queue_drops_and_counts_instead_of_blocking(tmp_path):
    # A serializer that waits stands in for a disk that cannot keep up.
    disk_free = threading.Event()

    def slow_serialize(msg):
        disk_free.wait(5.0)
        return serialize_message(msg)

    recorder = Recorder(slow_serialize, queue_size=3)
    recorder.start(tmp_path)
    accepted = [recorder.submit(i, [Record('/i', 'sensor_msgs/msg/Image', image(i))])
                for i in range(10)]
    # One in the writer's hands, three queued, the rest dropped.
    assert accepted.count(False) >= 6
    disk_free.set()
    summary = recorder.stop()
    assert summary.frames + summary.dropped == 10
    assert summary.dropped == accepted.count(False)
    assert len(list(read_ros2_messages(summary.path))) == summary.frames
