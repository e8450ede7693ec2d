"""`pip install` gives `ros2 run` and launch_ros what colcon gives them.

Both look for a package's executables in <prefix>/lib/<package>/ (launch_ros's
ExecutableInPackage); pip puts console scripts in bin/ only, so the wheel brings shims
(setup.py). Built from a copy of the sources and installed into a venv of its own: pip
installing into another prefix of this interpreter would uninstall the checkout's editable
install first.
"""

import os
from pathlib import Path
import shutil
import subprocess
import sys

from ament_index_python.packages import get_package_prefix
import pytest

from sensor_workers.launch_requirements import Executable

REPO = Path(__file__).resolve().parents[1]
SOURCES = ('setup.py', 'setup.cfg', 'package.xml', 'resource', 'src', 'launch', 'config')
EXECUTABLES = ('camera_node', 'ft_node', 'manager', 'bridge', 'bota_sim', 'sensor-workers')


@pytest.fixture(scope='module')
def prefix(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp('source')
    for name in SOURCES:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        copy(REPO / name, source / name)
    wheels, prefix = tmp_path_factory.mktemp('wheels'), tmp_path_factory.mktemp('venv')
    pip = [sys.executable, '-m', 'pip', '--disable-pip-version-check', '-q']
    subprocess.run([*pip, 'wheel', '--no-deps', '--no-build-isolation', '-w', str(wheels),
                    str(source)], check=True, timeout=180)
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(prefix)], check=True,
                   timeout=60)
    subprocess.run([*pip, '--python', str(prefix / 'bin' / 'python'), 'install', '--no-deps',
                    *map(str, wheels.glob('*.whl'))], check=True, timeout=180)
    return prefix


def test_every_executable_is_where_ros2_run_looks(prefix, monkeypatch):
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(prefix))
    assert get_package_prefix('sensor_workers') == str(prefix)
    for name in EXECUTABLES:
        assert Executable('sensor_workers', name).problem() is None, name
        assert os.access(prefix / 'lib' / 'sensor_workers' / name, os.X_OK), name


def test_a_shim_runs_the_installed_executable(prefix):
    # The venv has sensor_workers only; its dependencies come from the project's venv.
    dependencies = next(Path(sys.prefix).glob('lib/python3*/site-packages'))
    result = subprocess.run(
        [str(prefix / 'lib' / 'sensor_workers' / 'bota_sim'), '--help'],
        env={**os.environ, 'PYTHONPATH': str(dependencies)}, capture_output=True, text=True,
        timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert '--sinc' in result.stdout
