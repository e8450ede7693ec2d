"""Killed workers leave nothing behind: no simulator directory, no shared-memory segment.

A SIGKILLed process cannot clean up after itself. Its F/T simulator (a child tied to it)
removes the worker's run directory when it gets its parent-death signal; the manager removes
the dead process's Fast DDS segments when it reaps it (shm_segments.py). A killed camera's
side channel is taken over by its successor (one file, whatever the kills), and removed when
the camera stops cleanly.
"""

import os
from pathlib import Path
import signal
import tempfile
import time

from manager_helpers import Watch, available_devices, start_manager, write_config
import psutil
import pytest

from sensor_workers import shm_segments
from sensor_workers.shm_segments import held, segment_locks
from sensor_workers.side_channel.layout import channel_path
from sensor_workers.testing.ros_probe import RosProbe
from sensor_workers.testing.waiting import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(set(available_devices()) != {'camera', 'ft'}, reason='needs both workers'),
]

KILLS = 20
GUARD_S = shm_segments.MIN_AGE_S + 0.1


def unheld_segments(since: float) -> list[Path]:
    """Return the segment lock files made since `since` that no live process holds."""
    unheld = []
    for lock in segment_locks():
        try:
            if lock.stat().st_mtime >= since and not held(lock):
                unheld.append(lock)
        except FileNotFoundError:
            continue  # removed meanwhile
    return unheld


def unheld_ports(since: float) -> list[Path]:
    """Return the shared-memory ports made since `since` that no live process listens on."""
    unheld = []
    for lock in Path('/dev/shm').glob('fastrtps_port*_el'):
        try:
            if lock.stat().st_mtime >= since and not held(lock):
                unheld.append(lock)
        except FileNotFoundError:
            continue
    return unheld


def segments_older_than(pid: int, age_s: float) -> bool:
    """Tell whether every Fast DDS segment `pid` maps is `age_s` old (the F/T worker has none)."""
    locks = [Path(f'{path}_el') for path in mapped_segments(pid)]
    try:
        return all(time.time() - lock.stat().st_mtime >= age_s for lock in locks)
    except FileNotFoundError:
        return False


def mapped_segments(pid: int) -> set[str]:
    """Return the Fast DDS segments (ports excluded) that `pid` maps."""
    maps = Path(f'/proc/{pid}/maps').read_text(errors='replace')
    paths = (line.split(maxsplit=5)[5:] for line in maps.splitlines())
    return {path[0] for path in paths if path and shm_segments.is_segment(path[0])}


def live_sim_dirs() -> set[str]:
    """Return the run directories live simulators were told to remove."""
    dirs = set()
    for process in psutil.process_iter(['cmdline']):
        cmdline = process.info['cmdline'] or []
        if '--remove-dir' in cmdline:
            dirs.add(cmdline[cmdline.index('--remove-dir') + 1])
    return dirs


def test_twenty_kills_leave_no_directory_and_no_segment(procs, tmp_path):
    started = time.time()
    sim_dirs = Path(tempfile.gettempdir())
    config = write_config(tmp_path, {
        'devices': ['camera', 'ft'], 'start_timeout_ms': 60000,
        'restart_backoff_reset_s': 1.0, 'degraded_after_failures': 100})
    probe = RosProbe('leftovers_probe')
    try:
        watch = Watch.attach(probe)
        manager = start_manager(procs, config)
        watch.wait_active(['camera', 'ft'], timeout=120)
        channel = channel_path(int(os.environ['ROS_DOMAIN_ID']), '/camera')
        inode = channel.stat().st_ino
        for kill in range(KILLS):
            device = ('ft', 'camera')[kill % 2]
            pid = int(watch.state(device)['pid'])
            # A segment younger than the cleanup's guard may be one being created: it stays.
            wait_until(lambda pid=pid: segments_older_than(pid, GUARD_S), 10,
                       f'the segments of {device} pid {pid} older than {GUARD_S} s')
            os.kill(pid, signal.SIGKILL)
            watch.wait_active([device], timeout=60, not_pid=pid)
        wait_until(lambda: not unheld_segments(started), 10,
                   'segments of killed workers removed')
        # A dead listener's port goes once its writers let go of it (the 3 s lease at most).
        wait_until(lambda: not unheld_ports(started), 10, 'ports of killed workers removed')
        left = [d for d in sim_dirs.glob('ft_sim_*')
                if d.stat().st_mtime >= started and str(d) not in live_sim_dirs()]
        assert not left, f'simulator directories of killed workers: {left}'
        assert 'removed' in manager.output()
        # Every successor took the camera's side channel over: one file, the first one.
        assert channel.stat().st_ino == inode
        assert [p.name for p in channel.parent.glob(f'{channel.name}*')] == [channel.name]
        manager.stop()
        assert not channel.exists(), 'a cleanly stopped camera leaves its side channel'
    finally:
        probe.close()
