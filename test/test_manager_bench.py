"""Smoke test of bench/recovery.py: a kill of the F/T worker and of a bridge, figures printed."""

import pytest

pytestmark = pytest.mark.integration


def test_recovery_bench_runs(procs):
    bench = procs.start_python('recovery', 'bench.recovery', '--kills', '1', '--devices', 'ft',
                               '--bridge-kills', '1')
    assert bench.popen.wait(120) == 0, bench.tail()
    assert bench.wait_for_output(r'^ft\s+1\s+\d+\s+\d+\s+\d+\s+\d+', timeout=1)
    assert bench.wait_for_output(r'^bridge kills \(its own profile\): 1, devices paused',
                                 timeout=1)
