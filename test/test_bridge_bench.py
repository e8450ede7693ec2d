"""Smoke test of bench/bridge_fanout.py: it runs and prints its table (figures are not judged)."""

from pathlib import Path
import subprocess
import sys

import pytest

from sensor_workers.lifetime import tied_command

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.integration
def test_bridge_fanout_bench_runs():
    result = subprocess.run(
        tied_command([sys.executable, '-m', 'bench.bridge_fanout', '--seconds', '1',
                      '--clients', '1']),
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    relays = ('bridge', 'bridge-fox', 'sdk')
    assert {(row[0], row[1]) for row in rows if row and row[0] in relays} == {
        (relay, '1') for relay in relays}
