"""The cell on real hardware: a Basler camera and a Bota serial F/T sensor (config/robot.yaml).

ros2 launch sensor_workers bringup.launch.py [config:=/path/to/cell.yaml] [bridge_host:=0.0.0.0]
"""

from sensor_workers.bringup import generate


def generate_launch_description():
    return generate('robot.yaml', static_tf=False)
