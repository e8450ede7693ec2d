"""The ROS distribution the bridge runs on, for serverInfo's `ROS_DISTRO` metadata."""

from functools import cache
from importlib import metadata
import os

# PyPI's ROS wheels are named ros-<distro>-<package> (Kilted's also plain ros-<package>).
DISTROS = ('humble', 'iron', 'jazzy', 'kilted', 'rolling')


@cache
def ros_distro() -> str:
    """Return `$ROS_DISTRO` (a sourced ROS install), else the distro of the rclpy wheel."""
    if os.environ.get('ROS_DISTRO'):
        return os.environ['ROS_DISTRO']
    for distro in DISTROS:
        try:
            metadata.version(f'ros-{distro}-rclpy')
        except metadata.PackageNotFoundError:
            continue
        return distro
    return ''
