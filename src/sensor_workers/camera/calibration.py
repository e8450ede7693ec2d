"""Camera calibration files (camera_calibration's YAML format) for `camera_info_url`."""

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import yaml


class CalibrationError(ValueError):
    """The URL cannot be resolved or the file is not a calibration."""


@dataclass(frozen=True)
class Calibration:
    """Intrinsics as in sensor_msgs/CameraInfo; an empty one means uncalibrated."""

    width: int = 0
    height: int = 0
    camera_name: str = ''
    distortion_model: str = ''
    d: list[float] = field(default_factory=list)
    k: list[float] = field(default_factory=lambda: [0.0] * 9)
    r: list[float] = field(default_factory=lambda: [0.0] * 9)
    p: list[float] = field(default_factory=lambda: [0.0] * 12)


def resolve(url: str) -> Path:
    """Turn `file:///path`, `package://pkg/path` or a plain path into a file path."""
    parsed = urlparse(url)
    if parsed.scheme in ('', 'file'):
        return Path(unquote(parsed.path if parsed.scheme else url)).expanduser()
    if parsed.scheme == 'package':
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )

        try:
            share = get_package_share_directory(parsed.netloc)
        except PackageNotFoundError as error:
            raise CalibrationError(f'{url}: package {parsed.netloc} not found') from error
        return Path(share) / unquote(parsed.path).lstrip('/')
    raise CalibrationError(f'{url}: only file://, package:// and plain paths are supported')


def load(url: str) -> Calibration:
    """Read a calibration; '' gives an empty (uncalibrated) one."""
    if not url:
        return Calibration()
    path = resolve(url)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise CalibrationError(f'{url}: {error}') from error
    if not isinstance(data, dict):
        raise CalibrationError(f'{url}: not a camera calibration file')
    try:
        return Calibration(
            width=int(data['image_width']),
            height=int(data['image_height']),
            camera_name=str(data.get('camera_name', '')),
            distortion_model=str(data.get('distortion_model', 'plumb_bob')),
            d=_matrix(data, 'distortion_coefficients', None),
            k=_matrix(data, 'camera_matrix', 9),
            r=_matrix(data, 'rectification_matrix', 9),
            p=_matrix(data, 'projection_matrix', 12),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise CalibrationError(f'{url}: bad calibration ({error})') from error


def _matrix(data: dict, key: str, size: int | None) -> list[float]:
    values = [float(v) for v in data[key]['data']]
    if size is not None and len(values) != size:
        raise ValueError(f'{key} has {len(values)} values, expected {size}')
    return values
