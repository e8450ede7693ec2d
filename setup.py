"""ament_python package setup; builds with colcon and installs with pip."""

from glob import glob

from setuptools import find_packages, setup

package_name = 'sensor_workers'

setup(
    name=package_name,
    version='0.1.0',
    package_dir={'': 'src'},
    packages=find_packages(where='src'),
    package_data={package_name: ['bridge/static/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.xml')
         + glob('config/*.rviz')),
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
        'console_scripts': [
            'camera_node = sensor_workers.camera.node:main',
            'ft_node = sensor_workers.ft.node:main',
            'manager = sensor_workers.manager.node:main',
            'bridge = sensor_workers.bridge.node:main',
            'bota_sim = sensor_workers.ft.sim:main',
            'sensor-workers = sensor_workers.cli:main',
        ],
    },
)
