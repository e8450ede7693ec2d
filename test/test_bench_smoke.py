"""Smoke tests of the benchmark suite: each of its benchmarks runs for about a second.

Figures are not judged here (the machine may be busy); the point is that none can rot. The
component benchmarks (ft_latency, camera_throughput, recovery) have their own smoke tests.
Deselect with `-m "not bench"`.
"""

from collections.abc import Iterator
import json
import os
from pathlib import Path
import re

import numpy as np
import pytest

from bench import isolation, shm_stall, soak
from bench.__main__ import summary_table, write_report

pytestmark = pytest.mark.bench


@pytest.fixture
def own_environment() -> Iterator[None]:
    """Give back this session's ROS environment: a benchmark picks and installs its own."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_analysis_counts_lost_and_late_samples():
    period = 1e6  # 1 kHz
    epoch = 1_000_000_000
    counters = np.array([c for c in range(100) if c not in (10, 11, 50)])
    arrival = (epoch + counters * period + 200_000).astype(np.int64)
    arrival[counters == 70] += 5_000_000  # one sample 5 ms late
    result = isolation.analyse(arrival, counters % isolation.COUNTER_MODULUS, epoch, period,
                               epoch, epoch + int(100 * period))
    assert (result['expected'], result['received'], result['lost']) == (100, 97, 3)
    assert result['latency_ms']['p50'] == pytest.approx(0.2)
    assert result['latency_ms']['max'] == pytest.approx(5.2)
    assert result['jitter_ms']['max'] == pytest.approx(5.0)


def test_counters_unwrap_past_the_simulator_modulus():
    period = 1e6
    counters = np.array([999_999, 1_000_000, 1_000_001])
    arrival = (counters * period).astype(np.int64)
    unwrapped = isolation.unwrap_counters(counters % isolation.COUNTER_MODULUS, arrival, 0,
                                          period)
    assert list(unwrapped) == list(counters)


def test_rss_growth_is_judged_only_for_processes_that_lived_throughout():
    series = [(float(t), {1: ('bridge', 100 + t), 2 + t // 50: ('ft', 50)})
              for t in range(0, 100)]
    result = soak.growth(series, warmup_s=10, window_s=10)
    assert result['bridge']['judged']
    assert result['bridge']['growth'] == pytest.approx((194.0 - 114.5) / 114.5)
    assert not result['ft']['judged']


def test_recovery_timeline_plot(tmp_path: Path):
    from bench.recovery_timeline import plot

    t0 = 10**18
    data = {'arrivals': {'ft': [t0 - 10**8, t0 + 6 * 10**8], 'camera': []},
            'events': [{'t_ns': t0, 'device': 'ft', 'event': 'exited', 'pid': '1'},
                       {'t_ns': t0 + 5 * 10**8, 'device': 'ft', 'event': 'restarted',
                        'pid': '2'}]}
    assert plot(data, tmp_path / 'timeline.png', 'test').stat().st_size > 0
    assert plot({'arrivals': {}, 'events': []}, tmp_path / 'none.png', 'test') is None


def _tail(path: Path, lines: int = 30) -> str:
    return '\n'.join(path.read_text(errors='replace').splitlines()[-lines:])


@pytest.mark.integration
def test_isolation_bench_runs(tmp_path: Path, capsys, own_environment):
    """The idle set-up and the thread-in-the-loaded-bridge set-up, one second each."""
    logs = tmp_path / 'logs'  # kept: the processes' logs and records, for a failure
    assert isolation.main(['--seconds', '1', '--rates', '1000', '--setups', 'a,c', '--tiny',
                           '--out', str(tmp_path), '--keep', str(logs)]) == 0
    out = capsys.readouterr().out
    assert '| 1000 Hz | a: own process, idle | ros |' in out
    assert '| 1000 Hz | c: thread in the saturated bridge | ws |' in out
    results = json.loads((tmp_path / 'isolation.json').read_text())
    rows = {(r['setup'], r['client']): r for r in results['rows']}
    assert rows[('a', 'ros')]['received'] > 500, out
    assert rows[('c', 'ws')]['received'] > 0, (out, _tail(logs / 'ws_probe_1000_c.log'),
                                               _tail(logs / 'bridge_embedded.log'))
    assert (tmp_path / 'isolation_cdf_1000hz.png').stat().st_size > 0
    # The load generator ran against the bridge and got wrench batches and HTTP answers.
    load = results['loads']['c 1000 Hz']
    assert load['messages_per_s']['wrench'] > 0 and load['http_requests'] > 0

    figures = [{'figure': 'x', 'value': 'y', 'ratio': 1.0, 'target': '-'}]
    report = write_report(tmp_path, __import__('datetime').datetime.now(), None,
                          [{'name': 'isolation', 'argv': [], 'ok': True, 'output': out,
                            'seconds': 1.0}], figures, results, 0.0, [])
    text = report.read_text()
    assert summary_table(figures) in text and 'isolation_cdf_1000hz.png' in text


@pytest.mark.integration
def test_soak_runs(tmp_path: Path, capsys, own_environment):
    """The whole system with web clients and one kill, for a few seconds."""
    code = soak.main(['--seconds', '10', '--kill-every', '4', '--no-standby',
                      '--out', str(tmp_path)])
    out = capsys.readouterr().out
    assert '| process | RSS after warm-up MB |' in out and 'Result: ' in out, out
    assert 'F/T samples lost' in out and 'manager events' in out, out
    assert (tmp_path / 'soak.md').exists() and (tmp_path / 'soak_rss.png').exists()
    assert code in (0, 1)  # the verdict depends on the machine's load; the run must complete


@pytest.mark.integration
def test_shm_stall_bench_runs(capsys, own_environment):
    """One subscriber killed and restarted next to the publisher, with each set-up."""
    assert shm_stall.main(['--kills', '1']) == 0
    out = capsys.readouterr().out
    rows = re.findall(r'^(Fast DDS defaults \(baseline\)|shipped profile) +1 +[01] ', out,
                      re.MULTILINE)
    assert rows == ['Fast DDS defaults (baseline)', 'shipped profile'], out
