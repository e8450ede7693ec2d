"""The bridge alone, on a host of its own; the devices run elsewhere (bridge:=false there).

ros2 launch sensor_workers bridge.launch.py [config:=/path/to/cell.yaml] [bridge_host:=0.0.0.0]
Set ROS_STATIC_PEERS to the devices' host (README, "Devices and bridge on different hosts").
"""

from sensor_workers.bringup import generate_bridge


def generate_launch_description():
    return generate_bridge('robot.yaml')
