"""A subscriber as a user writes it: plain rclpy, sensor-data QoS, no Fast DDS profile.

Run as a script in its own process (a profile is loaded once per process, so the test runner's
own participant could not stand in for it). Prints one JSON line: frames counted over
`seconds` after the first one arrived, and their rate by arrival time.

    python test/plain_image_subscriber.py /camera/image_raw 5
"""

import json
import sys
import time

import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

FIRST_FRAME_TIMEOUT_S = 30.0


def main() -> int:
    topic, seconds = sys.argv[1], float(sys.argv[2])
    rclpy.init()
    node = rclpy.create_node('plain_image_subscriber')
    arrivals: list[float] = []
    sizes: set[tuple[int, int]] = set()

    def on_image(msg: Image) -> None:
        arrivals.append(time.monotonic())
        sizes.add((msg.width, msg.height))

    node.create_subscription(Image, topic, on_image, qos_profile_sensor_data)
    deadline = time.monotonic() + FIRST_FRAME_TIMEOUT_S
    while not arrivals and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    if arrivals:
        end = arrivals[0] + seconds
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.1)
    window = [t for t in arrivals if t <= arrivals[0] + seconds] if arrivals else []
    fps = (len(window) - 1) / (window[-1] - window[0]) if len(window) > 1 else 0.0
    print(json.dumps({'frames': len(window), 'fps': fps, 'sizes': sorted(sizes)}))
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
