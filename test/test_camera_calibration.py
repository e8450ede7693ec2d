"""Calibration files for camera_info_url (camera_calibration's YAML format)."""

import pytest

from sensor_workers.camera.calibration import Calibration, CalibrationError, load

CALIBRATION = """\
image_width: 1024
image_height: 1040
camera_name: camera
camera_matrix: {rows: 3, cols: 3, data: [800.0, 0.0, 512.0, 0.0, 800.0, 520.0, 0.0, 0.0, 1.0]}
distortion_model: plumb_bob
distortion_coefficients: {rows: 1, cols: 5, data: [-0.1, 0.01, 0.0, 0.0, 0.0]}
rectification_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}
projection_matrix: {rows: 3, cols: 4, data: [800, 0, 512, 0, 0, 800, 520, 0, 0, 0, 1, 0]}
"""


def test_empty_url_is_uncalibrated():
    assert load('') == Calibration()


def test_file_url_and_plain_path(tmp_path):
    path = tmp_path / 'camera.yaml'
    path.write_text(CALIBRATION)
    for url in (f'file://{path}', str(path)):
        cal = load(url)
        assert (cal.width, cal.height, cal.distortion_model) == (1024, 1040, 'plumb_bob')
        assert cal.k[0] == 800.0 and cal.k[5] == 520.0
        assert len(cal.d) == 5 and len(cal.p) == 12


def test_bad_urls_say_why(tmp_path):
    with pytest.raises(CalibrationError, match='No such file'):
        load(str(tmp_path / 'missing.yaml'))
    broken = tmp_path / 'broken.yaml'
    broken.write_text(CALIBRATION.replace('data: [800.0, 0.0, 512.0, ', 'data: ['))
    with pytest.raises(CalibrationError, match='camera_matrix has 6 values, expected 9'):
        load(str(broken))
    with pytest.raises(CalibrationError, match='only file://, package://'):
        load('http://example.com/camera.yaml')
