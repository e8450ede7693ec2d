"""Shared-memory files of dead processes go; those of live ones and young ones stay."""

import fcntl
import os
from pathlib import Path
import time

from sensor_workers.shm_segments import remove_dead_segments, remove_orphaned_files


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


def aged(path: Path, age_s: float = 60) -> Path:
    path.touch()
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def fake_process(proc: Path, pid: int, mapped: list[Path], open_files: list[Path] = ()) -> None:
    """Write what /proc shows of a live process that maps `mapped` and holds `open_files`."""
    (proc / str(pid) / 'fd').mkdir(parents=True)
    (proc / str(pid) / 'maps').write_text(''.join(
        f'7f00{i:08x}-7f01{i:08x} rw-s 00000000 00:1a 1234  {path}\n'
        for i, path in enumerate(mapped)) + '7ffd0000-7ffd1000 rw-p 00000000 00:00 0 \n')
    for fd, path in enumerate(open_files, start=3):
        (proc / str(pid) / 'fd' / str(fd)).symlink_to(path)


def test_ports_without_a_listener_and_semaphores_nobody_uses_are_removed(tmp_path):
    shm, proc = tmp_path / 'shm', tmp_path / 'proc'
    shm.mkdir()
    listened = [aged(shm / 'fastrtps_port7413'), aged(shm / 'fastrtps_port7413_el'),
                aged(shm / 'sem.fastrtps_port7413_mutex')]
    mapped_without_lock = aged(shm / 'fastrtps_port7415')
    dead = [aged(shm / 'fastrtps_port7417'), aged(shm / 'sem.fastrtps_port7417_mutex'),
            aged(shm / 'fastrtps_port7417_el'), aged(shm / 'sem.fastrtps_port7419_mutex'),
            aged(shm / 'fastrtps_port7421'), aged(shm / 'sem.168b26410036956e1eGenICam_XML')]
    young = aged(shm / 'fastrtps_port7423', age_s=0)
    segment = aged(shm / 'fastrtps_0123456789abcdef')
    # 7417's listener is gone, though a writer still maps the port; 7415 is mapped, not locked.
    fake_process(proc, 100, [listened[0], shm / 'fastrtps_port7417',
                             tmp_path / 'libfastrtps.so.2.14'], [mapped_without_lock])
    fake_process(proc, 101, [])
    with listened[1].open('rb') as listener:
        fcntl.flock(listener, fcntl.LOCK_EX)
        assert sorted(remove_orphaned_files(shm, proc)) == sorted(dead)
    assert all(p.exists() for p in (*listened, mapped_without_lock, young, segment))


def test_genicam_semaphores_stay_while_a_process_has_genicam_loaded(tmp_path):
    shm, proc = tmp_path / 'shm', tmp_path / 'proc'
    shm.mkdir()
    semaphore = aged(shm / 'sem.1570d29c3a35817808GenICam_XML')
    fake_process(proc, 100, [tmp_path / 'pypylon' / 'libGCBase_gcc_v3_1_Basler_pylon.so'])
    assert remove_orphaned_files(shm, proc) == []
    assert semaphore.exists()
