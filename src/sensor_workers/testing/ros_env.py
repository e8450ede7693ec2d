"""A private, loopback-only ROS environment per test or benchmark run."""

import fcntl
import os
from pathlib import Path
import random
import socket
import tempfile

from sensor_workers.paths import fastdds_profile

# Domain ids whose RTPS ports stay below the Linux ephemeral range (ROS 2 docs: 0-101).
_DOMAIN_IDS = range(1, 102)
_LOCK_DIR = Path(tempfile.gettempdir()) / 'sensor_workers_domains'
_held_locks: list[int] = []


def _ports_free(domain_id: int) -> bool:
    """Check the unicast discovery ports of the first participants of a domain on loopback."""
    base = 7400 + 250 * domain_id
    for port in (base + 10, base + 12, base + 14):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(('127.0.0.1', port))
            except OSError:
                return False
    return True


def pick_domain_id() -> int:
    """Reserve a ROS_DOMAIN_ID no other run on this machine uses, for this process's lifetime.

    The reservation is an flock on a file per domain, so parallel test runs and benchmarks never
    share a domain; it is released when this process exits.
    """
    _LOCK_DIR.mkdir(exist_ok=True)
    candidates = list(_DOMAIN_IDS)
    random.shuffle(candidates)
    for domain_id in candidates:
        fd = os.open(_LOCK_DIR / f'{domain_id}.lock', os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if _ports_free(domain_id):
            _held_locks.append(fd)
            return domain_id
        os.close(fd)
    raise RuntimeError('no free ROS_DOMAIN_ID on this machine')


def isolated_ros_environment(domain_id: int | None = None) -> dict[str, str]:
    """Return the variables that keep DDS on loopback in a private domain, with our profile."""
    profile = str(fastdds_profile())
    return {
        'ROS_DOMAIN_ID': str(pick_domain_id() if domain_id is None else domain_id),
        'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
        'FASTDDS_DEFAULT_PROFILES_FILE': profile,
        # Fast DDS 2.x (Jazzy) only reads the old name; without it the 64 MB segment is not used.
        'FASTRTPS_DEFAULT_PROFILES_FILE': profile,
        'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp',
    }


def apply_isolated_ros_environment() -> dict[str, str]:
    """Put an isolated ROS environment into os.environ (before rclpy.init) and return it."""
    env = isolated_ros_environment()
    os.environ.update(env)
    return env
