"""Smoke test: the camera throughput benchmark runs and prints its table."""

import pytest

from bench import camera_throughput

pytestmark = pytest.mark.integration


def test_camera_throughput_bench_runs(capsys, ros_env):
    assert camera_throughput.main(['--seconds', '1', '--sizes', '640x480'], env=ros_env) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:3] == ['size', 'pub', 'fps']
    assert lines[2].startswith('640x480')
