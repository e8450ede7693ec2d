"""Smoke test of bench/recovery.py: one kill, figures printed."""

import pytest

pytestmark = pytest.mark.integration


def test_recovery_bench_runs(procs):
    bench = procs.start_python('recovery', 'bench.recovery', '--kills', '1', '--devices', 'ft')
    assert bench.popen.wait(120) == 0, bench.tail()
    assert bench.wait_for_output(r'^ft\s+1\s+\d+\s+\d+\s+\d+\s+\d+', timeout=1)
