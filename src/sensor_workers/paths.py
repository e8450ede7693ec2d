"""Where the package's configuration files are, installed (colcon, pip) or in a source tree."""

from pathlib import Path

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


def fastdds_profile() -> Path:
    """Return the Fast DDS profile with the enlarged shared-memory segment large images need."""
    return config_file('fastdds.xml')


# Fast DDS 2.x (Jazzy) reads only the first name, Fast DDS 3.x (Kilted and later) the second.
FASTDDS_PROFILE_VARIABLES = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')


def fastdds_profile_environment() -> dict[str, str]:
    """Return the variables that make every Fast DDS version load our profile."""
    profile = str(fastdds_profile())
    return dict.fromkeys(FASTDDS_PROFILE_VARIABLES, profile)
