"""The cell on emulated devices: pypylon's camera emulator and the simulated Bota sensor.

ros2 launch sensor_workers sim.launch.py [bridge_port:=8081] [rviz:=true] [log_level:=debug]
"""

from sensor_workers.bringup import generate


def generate_launch_description():
    return generate('sim.yaml', static_tf=True)
