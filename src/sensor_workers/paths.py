"""Where the package's configuration files are, installed (colcon, pip) or in a source tree."""

from collections.abc import Mapping
from dataclasses import dataclass
import os
from pathlib import Path

from sensor_workers.shm_segments import remove_unheld_ports

PACKAGE = 'sensor_workers'
_SOURCE_TREE_CONFIG = Path(__file__).resolve().parents[2] / 'config'


def config_dir() -> Path:
    """Return the directory holding sim.yaml, robot.yaml and fastdds.xml."""
    if (_SOURCE_TREE_CONFIG / 'sim.yaml').is_file():
        return _SOURCE_TREE_CONFIG
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(PACKAGE)) / 'config'


def config_file(name: str) -> Path:
    """Return the path of a shipped config file, e.g. `config_file('sim.yaml')`."""
    path = config_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f'{name} not found in {config_dir()}')
    return path


# The shipped Fast DDS profiles: the cell's (shared memory with the enlarged segment large
# images need, UDPv4 between hosts), which only the camera keeps, and the UDP-only one of every
# other process (a process that dies in shared-memory code leaves locks that stall the others'
# sends; config/fastdds_udp.xml says why).
CELL_PROFILE = 'fastdds.xml'
UDP_PROFILE = 'fastdds_udp.xml'


def fastdds_profile(name: str = CELL_PROFILE) -> Path:
    """Return the path of a shipped Fast DDS profile (default: the devices')."""
    return config_file(name)


# Fast DDS 2.x (Jazzy) reads only the first name, Fast DDS 3.x (Kilted and later) the second.
FASTDDS_PROFILE_VARIABLES = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')


@dataclass(frozen=True)
class FastDdsProfile:
    """The Fast DDS profile a process loads: ours, or one the user set."""

    path: str
    shipped: bool

    def describe(self) -> str:
        whose = 'shipped' if self.shipped else 'set by the user'
        return f'Fast DDS profile {self.path} ({whose})'


def fastdds_profile_environment(environ: Mapping[str, str] | None = None,
                                profile: str = CELL_PROFILE) -> dict[str, str]:
    """Return the profile variables to set over `environ` (default: none given).

    A profile the user set, in either variable, wins and is copied to the other one, so every
    Fast DDS version loads it. When none is set, or the one set is a shipped profile (the
    launch files and `sensor-workers up` hand the devices' profile to every process they start),
    both name the shipped `profile`.
    """
    environ = {} if environ is None else environ
    chosen = next((environ[name] for name in FASTDDS_PROFILE_VARIABLES if environ.get(name)),
                  None)
    if chosen is None or _is_shipped(chosen):
        chosen = str(fastdds_profile(profile))
    return {name: chosen for name in FASTDDS_PROFILE_VARIABLES if environ.get(name) != chosen}


def use_fastdds_profile(profile: str = CELL_PROFILE) -> FastDdsProfile:
    """Make this process, and the children it starts, load the user's profile or ours.

    Call before `rclpy.init()`: Fast DDS reads the variables when it creates the first
    participant. Large images depend on the *publisher's* profile (measured: a standalone
    camera without one delivered 5-12 fps of 30 at 2448x2048), so no node of ours relies on its
    caller to set it. Shared-memory ports nobody uses are removed first: this process may get
    one's number, and would then keep the health-check timeout of whoever created it instead of
    the profile's (shm_segments.py).
    """
    remove_unheld_ports()
    os.environ.update(fastdds_profile_environment(os.environ, profile))
    return fastdds_profile_in_use()


def fastdds_profile_in_use() -> FastDdsProfile:
    """Describe the profile this process loads (after `use_fastdds_profile()`)."""
    path = os.environ[FASTDDS_PROFILE_VARIABLES[0]]
    return FastDdsProfile(path, shipped=_is_shipped(path))


def _is_shipped(path: str) -> bool:
    # The launch files name the installed copy (or a symlink to it); a source tree, ours.
    for name in (CELL_PROFILE, UDP_PROFILE):
        try:
            if os.path.samefile(path, fastdds_profile(name)):
                return True
        except OSError:  # the user's file does not exist: Fast DDS will say so
            continue
    return False
