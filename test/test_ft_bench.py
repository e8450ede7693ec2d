"""Smoke test of bench/ft_latency.py: it runs and prints its table (figures are not judged)."""

from pathlib import Path
import subprocess
import sys

import pytest

from sensor_workers.lifetime import tied_command

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.integration
def test_ft_latency_bench_runs():
    command = tied_command([sys.executable, '-m', 'bench.ft_latency', '--seconds', '1'])
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '1 kHz ft_node+DDS' in result.stdout
