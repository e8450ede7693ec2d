"""ament_python package setup; builds with colcon and installs with pip."""

from glob import glob
from pathlib import Path
import sys

from setuptools import find_packages, setup

package_name = 'sensor_workers'
CONSOLE_SCRIPTS = {
    'camera_node': 'sensor_workers.camera.node:main',
    'ft_node': 'sensor_workers.ft.node:main',
    'manager': 'sensor_workers.manager.node:main',
    'bridge': 'sensor_workers.bridge.main:main',
    'bota_sim': 'sensor_workers.ft.sim:main',
    'sensor-workers': 'sensor_workers.cli:main',
}
# `ros2 run` and launch_ros's Node(package=...) look for executables in <prefix>/lib/<package>/.
# colcon puts the console scripts there (setup.cfg); a wheel (pip install) puts them in bin/
# only, so a wheel also installs a shim per executable there that runs the one in bin/.
LIB_SHIM = ('#!/bin/sh\n# sensor_workers: runs the executable of this name in <prefix>/bin\n'
            'exec "$(dirname "$0")/../../bin/$(basename "$0")" "$@"\n')


def lib_shims() -> list[tuple[str, list[str]]]:
    """Write the lib/ shims when building a wheel (regular or editable); none under colcon."""
    if not {'bdist_wheel', 'editable_wheel'} & set(sys.argv):
        return []
    directory = Path('build', 'lib_shims')
    directory.mkdir(parents=True, exist_ok=True)
    for name in CONSOLE_SCRIPTS:
        (directory / name).write_text(LIB_SHIM)
        (directory / name).chmod(0o755)
    return [('lib/' + package_name, [str(directory / name) for name in CONSOLE_SCRIPTS])]


setup(
    name=package_name,
    version='0.1.0',
    package_dir={'': 'src'},
    packages=find_packages(where='src'),
    package_data={package_name: ['bridge/static/*', 'py.typed']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.xml')
         + glob('config/*.rviz')),
        *lib_shims(),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='sensor_workers maintainers',
    maintainer_email='sensor-workers@example.com',
    description='Process-isolated ROS 2 workers for a Basler camera and a Bota F/T sensor, '
                'a lifecycle supervisor and a websocket bridge.',
    license='Apache-2.0',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [f'{name} = {target}' for name, target in CONSOLE_SCRIPTS.items()],
    },
)
