"""The pypylon wrapper on its own, in this process, against pypylon's camera emulator (no ROS)."""

from dataclasses import replace
import os
import shutil
import subprocess
import sys

import pytest

from sensor_workers.camera.basler import (
    ENCODINGS,
    BaslerCamera,
    CameraError,
    CameraRemoved,
    Settings,
)

# pytest-timeout's default SIGALRM method misfires in a process that runs pylon's emulator with
# fault injection (a test "times out" after a second); the thread method does not.
pytestmark = pytest.mark.timeout(120, method='thread')


def next_frame(camera: BaslerCamera, timeout_s: float = 5.0):
    for _ in range(int(timeout_s * 20)):
        frame = camera.grab(50)
        if frame is not None:
            return frame
    raise AssertionError('no frame from the emulator')


@pytest.fixture(scope='module')
def camera():
    cam = BaslerCamera(emulate=True)
    cam.open(Settings(width=640, height=480))
    cam.start()
    yield cam
    cam.close()


def test_encodings_cover_mono_color_and_bayer():
    assert ENCODINGS['Mono8'] == ('mono8', 1)
    assert ENCODINGS['Mono12'] == ('mono16', 2)
    assert ENCODINGS['RGB8'] == ENCODINGS['RGB8Packed'] == ('rgb8', 3)
    assert ENCODINGS['BGR8Packed'] == ('bgr8', 3)
    assert ENCODINGS['BayerRG8'] == ('bayer_rggb8', 1)
    assert ENCODINGS['BayerGB12'] == ('bayer_gbrg16', 2)


def test_unknown_serial_is_refused_with_what_was_found():
    with pytest.raises(CameraError, match=r'camera 1234 not found \(found: 0815-0000'):
        BaslerCamera('1234', emulate=True).open()


def test_frames_carry_size_encoding_and_counter(camera):
    first = next_frame(camera)
    second = next_frame(camera)
    assert (first.width, first.height, first.step, first.encoding) == (640, 480, 640, 'mono8')
    assert len(first.data) == 640 * 480
    assert second.block_id == first.block_id + 1
    assert first.ticks == 0  # the emulator has no timestamps: the node falls back to host time


def test_refused_values_keep_the_old_ones(camera):
    before = dict(camera.readback)
    reason = camera.apply(replace(camera.settings, exposure_us=2e7))
    assert reason == 'exposure_us 2e+07 is outside the camera range [1, 1e+07]'
    reason = camera.apply(replace(camera.settings, offset_x=3600, width=640))
    assert 'width 640 is outside the camera range' in reason
    reason = camera.apply(replace(camera.settings, pixel_format='YUV422Packed'))
    assert 'not supported by this camera' in reason
    assert camera.readback == before
    assert camera.settings.exposure_us == before['exposure_us']


def test_pixel_format_and_roi_change_restart_the_grab(camera):
    assert camera.apply(replace(camera.settings, pixel_format='RGB8', offset_x=8,
                                width=320, height=240)) is None
    assert camera.is_grabbing
    frame = next_frame(camera)
    assert (frame.encoding, frame.width, frame.height, frame.step) == ('rgb8', 320, 240, 960)
    assert camera.readback['pixel_format'] == 'RGB8Packed'
    assert camera.readback['offset_x'] == 8
    assert camera.apply(replace(camera.settings, pixel_format='Mono12')) is None
    frame = next_frame(camera)
    assert (frame.encoding, frame.step, len(frame.data)) == ('mono16', 640, 320 * 240 * 2)


def test_failed_buffers_and_removal(camera):
    camera.emulate_failed_buffers(3)
    failed = 0
    for _ in range(15):
        frame = next_frame(camera)
        failed += bool(frame.error)
    assert failed == 3
    camera.emulate_removal()
    assert camera.removed
    with pytest.raises(CameraRemoved):
        camera.grab(50)
    settings = camera.settings
    camera.close()
    camera.open(settings)
    camera.start()
    assert not camera.removed
    frame = next_frame(camera)
    assert (frame.width, frame.height, frame.encoding) == (320, 240, 'mono16')


OPEN_AN_EMULATED_CAMERA = """
from sensor_workers.camera.basler import BaslerCamera
camera = BaslerCamera(emulate=True)
camera.open()
camera.close()
"""


@pytest.mark.skipif(shutil.which('strace') is None, reason='needs strace')
def test_opening_an_emulated_camera_sends_nothing_on_the_network(tmp_path):
    # Enumerating every transport layer broadcasts a GigE Vision discovery packet (UDP 3956) on
    # each interface; the emulator is looked up in its own transport layer only.
    trace = tmp_path / 'network.strace'
    subprocess.run(['strace', '-f', '-qq', '-e', 'trace=sendto,sendmsg,connect', '-o', str(trace),
                    sys.executable, '-c', OPEN_AN_EMULATED_CAMERA],
                   check=True, timeout=60, env={**os.environ, 'PYLON_CAMEMU': '1'})
    internet = [line for line in trace.read_text().splitlines() if 'AF_INET' in line]
    assert internet == []
