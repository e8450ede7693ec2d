"""Two emulated cameras (`camera`, `camera_left`) through the manager and the bridge.

pypylon's emulator with PYLON_CAMEMU=2 has the serials 0815-0000 and 0815-0001; each worker
runs its own emulator and opens one by serial. Small frames (640x480 Mono8 @ 30 fps) keep the
CPU low. One camera's worker is killed with SIGKILL: it heals, and the other camera's stream
and worker go on untouched.
"""

import asyncio
import os
import signal
import time

from bridge_helpers import NOT_YET, Bridge, Stream, receive
from manager_helpers import available_devices, start_manager, write_config
import psutil
import pytest
from sensor_msgs.msg import CameraInfo

from sensor_workers import qos
from sensor_workers.bridge.schemas import Status
from sensor_workers.testing.processes import ProcessGroup
from sensor_workers.testing.ros_probe import RosProbe
from sensor_workers.testing.waiting import wait_until

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif('camera' not in available_devices(),
                                 reason='camera worker not in tree')]
CAMERAS = ['camera', 'camera_left']
SERIALS = {'camera': '0815-0000', 'camera_left': '0815-0001'}
FPS = 30.0
# Seconds of streaming before and after the kill.
BEFORE_S, AFTER_S = 3.0, 5.0
# Longest pause the untouched camera's client may see (frames are 33 ms apart).
MAX_GAP_S = 0.5


def _config(directory):
    camera = {'emulate': True, 'frame_rate': FPS, 'width': 640, 'height': 480,
              'pixel_format': 'Mono8', 'exposure_us': 10000.0}
    return write_config(
        directory,
        # Generous liveness timeouts: on a shared 2-core machine a starved worker must not be
        # restarted in the middle of the measurement (only the killed one may be).
        {'devices': CAMERAS, 'heartbeat_timeout_ms': 1500, 'stall_timeout_ms': 5000,
         'camera': {'env': ['PYLON_CAMEMU=2']},
         'camera_left': {'kind': 'camera', 'env': ['PYLON_CAMEMU=2']}},
        {name: {**camera, 'serial_number': serial, 'frame_id': f'{name}_optical_frame',
                'camera_name': name} for name, serial in SERIALS.items()})


def _ready(bridge: Bridge) -> dict:
    """Both cameras active by the manager's word, beating, with a warm standby ready."""
    devices = bridge.status()['devices']
    if all(devices[c]['source'] == 'manager' and devices[c]['state'] == 'active'
           and devices[c]['heartbeat_age_ms'] is not None and devices[c]['rate_hz'] > 0
           and devices[c]['standby'] == 'ready' for c in CAMERAS):
        return devices
    return {}


async def _watch_and_kill(bridge: Bridge, pid: int) -> tuple[dict[str, Stream], float]:
    """Stream both cameras; SIGKILL `pid` after BEFORE_S; return the streams and kill time."""
    streams = {c: Stream() for c in CAMERAS}
    readers = [asyncio.ensure_future(receive(bridge.ws('/ws/image', device=c, format='raw'),
                                             BEFORE_S + AFTER_S, streams[c], warmup=1.0))
               for c in CAMERAS]
    await asyncio.sleep(1.0 + BEFORE_S)
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    await asyncio.gather(*readers)
    return streams, killed_at


def test_two_cameras_stream_and_heal_independently(tmp_path, ros_env):
    group = ProcessGroup(tmp_path, ros_env)
    probe = RosProbe('two_cameras_probe')
    try:
        infos = {c: probe.collect(CameraInfo, f'/{c}/camera_info', qos.SENSOR_DATA)
                 for c in CAMERAS}
        config = _config(tmp_path)
        start_manager(group, config)
        bridge = Bridge(group, f'devices:={CAMERAS}', f'cameras:={CAMERAS}',
                        params_file=str(config))
        before = wait_until(lambda: _ready(bridge), 60, 'both cameras active with a standby',
                            tolerate=NOT_YET)
        # Each worker is its own node and process and opened its own camera.
        for camera, serial in SERIALS.items():
            command = psutil.Process(before[camera]['pid']).cmdline()
            assert f'__node:={camera}' in command and 'sensor_workers.camera.node' in command
            wait_until(lambda c=camera: bridge.status()['devices'][c]['diagnostics'], 5,
                       f'{camera} diagnostics')
            assert bridge.status()['devices'][camera]['diagnostics']['serial_number'] == serial
            messages, _ = infos[camera].snapshot()
            assert messages and messages[-1].header.frame_id == f'{camera}_optical_frame'
        assert before['camera']['pid'] != before['camera_left']['pid']

        streams, killed_at = asyncio.run(_watch_and_kill(bridge, before['camera_left']['pid']))

        # The untouched camera: ~30 fps all along, no pause, its worker never restarted.
        right = streams['camera']
        assert right.frame_rate() > 0.9 * FPS, right.frame_rate()
        assert len(right.headers) > 0.85 * FPS * (BEFORE_S + AFTER_S), len(right.headers)
        gaps = [b - a for a, b in zip(right.arrival, right.arrival[1:], strict=False)]
        assert max(gaps) < MAX_GAP_S, f'longest pause {max(gaps):.3f} s'
        assert right.arrival[-1] > killed_at + AFTER_S - 0.5
        assert {h['width'] for h in right.headers} == {640}

        # The killed camera: ~30 fps before, back after the restart.
        left = streams['camera_left']
        early = [h for h, t in zip(left.headers, left.arrival, strict=True) if t < killed_at]
        assert len(early) > 0.85 * FPS * BEFORE_S, len(early)
        back = [t for t in left.arrival if t > killed_at + 0.1]
        assert back, 'camera_left never came back'
        heal_s = back[0] - killed_at
        assert heal_s < AFTER_S - 1.0, f'camera_left back after {heal_s:.2f} s'
        # After the restart it streams at the full rate again.
        assert len(back) > 0.85 * FPS * (killed_at + AFTER_S - back[0]) - 3, len(back)

        after = bridge.status()
        assert after['devices']['camera']['pid'] == before['camera']['pid']
        assert after['devices']['camera']['restarts'] == 0
        assert after['devices']['camera_left']['restarts'] == 1
        assert after['devices']['camera_left']['pid'] != before['camera_left']['pid']
        assert after['devices']['camera_left']['state'] == 'active'
        assert set(after['latency']) >= {'camera', 'camera_left'}
        assert after['latency']['camera_left']['topic'] == '/camera_left/image_raw'
        assert {c['device'] for c in after['clients'] if c['topic'] == 'image'} <= set(CAMERAS)
        Status.model_validate(after)
        print(f'camera_left back {heal_s * 1000:.0f} ms after SIGKILL; camera: '
              f'{right.frame_rate():.1f} fps, longest pause {max(gaps) * 1000:.0f} ms')
    finally:
        group.stop_all()
        probe.close()
