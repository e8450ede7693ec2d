"""The warm standby (standby.py) as a process of its own, against pypylon's emulator."""

import subprocess

from sensor_workers import paths
from sensor_workers.testing.waiting import wait_until


def participant(probe, topic: str, node_name: str) -> bytes | None:
    """Return the DDS participant (GUID prefix) of `node_name`'s publisher on `topic`, if seen."""
    for endpoint in probe.node.get_publishers_info_by_topic(topic):
        if endpoint.node_name == node_name:
            return bytes(endpoint.endpoint_gid[:12])
    return None


def test_a_standby_takes_over_in_the_participant_its_peers_know(procs, probe):
    # rmw_fastrtps destroys a context's participant with its last node: a standby that dropped
    # its placeholder before creating the worker took over as a new, undiscovered participant.
    standby = procs.start_python(
        'standby', 'sensor_workers.standby', 'sensor_workers.camera.node',
        '--ros-args', '-r', '__node:=camera', '--params-file', str(paths.config_file('sim.yaml')),
        '-p', 'autostart:=true', stdin=subprocess.PIPE)
    waiting = wait_until(lambda: participant(probe, '/rosout', '_standby_cameranode'), 60,
                         'the standby placeholder seen')
    standby.popen.stdin.write(b'go\n')
    standby.popen.stdin.close()
    working = wait_until(lambda: participant(probe, '/camera/image_raw', 'camera'), 30,
                         'the camera publisher seen')
    assert working == waiting
    wait_until(lambda: participant(probe, '/rosout', '_standby_cameranode') is None, 30,
               'the placeholder gone')
