"""Shared-memory segments of dead processes go; those of live ones and young ones stay."""

import fcntl
import os
from pathlib import Path
import time

from sensor_workers.shm_segments import remove_dead_segments


def segment(directory: Path, name: str, age_s: float) -> tuple[Path, Path]:
    data, lock = directory / f'fastrtps_{name}', directory / f'fastrtps_{name}_el'
    data.write_bytes(b'\0' * 64)
    lock.touch()
    then = time.time() - age_s
    os.utime(lock, (then, then))
    return data, lock


def test_only_segments_nobody_holds_are_removed(tmp_path):
    dead = segment(tmp_path, '0123456789abcdef', age_s=60)
    live = segment(tmp_path, 'fedcba9876543210', age_s=60)
    young = segment(tmp_path, '00000000000000aa', age_s=0)
    port = tmp_path / 'fastrtps_port7413'
    port.touch()
    (tmp_path / 'fastrtps_port7413_el').touch()
    with live[1].open('rb') as owner:  # what the living owner holds for its lifetime
        fcntl.flock(owner, fcntl.LOCK_EX)
        assert remove_dead_segments(tmp_path) == [dead[0]]
    assert not any(p.exists() for p in dead)
    assert all(p.exists() for p in (*live, *young, port))
