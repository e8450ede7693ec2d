"""Shared-memory files of dead processes go; those of live ones, young ones and busy ones stay."""

from collections.abc import Iterator
import contextlib
import ctypes
import fcntl
import mmap
import os
from pathlib import Path
import time

import pytest

from sensor_workers import shm_segments
from sensor_workers.shm_segments import (
    held,
    port_mutex,
    remove_dead_segments,
    remove_unheld_ports,
)


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


@pytest.fixture
def port_names() -> Iterator[list[str]]:
    """Names of made-up ports; their named mutexes (global POSIX semaphores) go afterwards."""
    names = [f'fastrtps_port{n}' for n in range(64990, 64996)]
    yield names
    libc = ctypes.CDLL(None)
    for name in names:
        libc.sem_unlink(f'/{name}_mutex'.encode())


def mutex_exists(port: Path) -> bool:
    return Path(f'/dev/shm/sem.{port.name}_mutex').exists()


def test_only_ports_nobody_listens_on_maps_or_sets_up_are_removed(tmp_path, port_names):
    listened, departed, abandoned, busy, mapped, mutex_only = (tmp_path / n for n in port_names)
    for port in (listened, departed, abandoned, busy, mapped):
        port.write_bytes(b'\0' * 64)
    for port in (listened, departed):
        port.with_name(f'{port.name}_el').touch()
    # A named mutex whose port is gone (as the scan of /dev/shm finds them).
    with port_mutex(mutex_only.name):
        (tmp_path / f'sem.{mutex_only.name}_mutex').touch()
    segment_data, _ = segment(tmp_path, '0123456789abcdef', age_s=60)
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(listened.with_name(f'{listened.name}_el').open('rb'))
        fcntl.flock(listener, fcntl.LOCK_EX)  # what a live listener holds
        # Fast DDS holds it while it creates, opens or resets the port.
        assert stack.enter_context(port_mutex(busy.name))
        # A writer that still maps a port would remove it by name when it closes it, and so a
        # new port of that number too (shm_segments.remove_unheld_ports).
        writer = stack.enter_context(mapped.open('r+b'))
        stack.enter_context(mmap.mmap(writer.fileno(), 64))
        assert remove_unheld_ports(tmp_path) == [departed, abandoned, mutex_only]
    assert listened.exists() and listened.with_name(f'{listened.name}_el').exists()
    assert not departed.exists() and not departed.with_name(f'{departed.name}_el').exists()
    assert not abandoned.exists()
    assert busy.exists() and mapped.exists() and segment_data.exists()
    # Removed with their ports, as Fast DDS removes them; the others' stay.
    assert not any(mutex_exists(p) for p in (departed, abandoned, mutex_only))
    assert mutex_exists(busy) and mutex_exists(mapped)


def test_a_port_removed_while_it_is_looked_at_is_passed_over(tmp_path, port_names, monkeypatch):
    # Fast DDS removed the port and its lock between the scan's `exists()` and its `flock`: the
    # bridge exited 1 at start once that way.
    port = tmp_path / port_names[0]
    port.write_bytes(b'\0' * 64)
    lock = port.with_name(f'{port.name}_el')
    lock.touch()

    def removed_meanwhile(path: Path) -> bool:
        port.unlink()
        path.unlink()
        return held(path)

    monkeypatch.setattr(shm_segments, 'held', removed_meanwhile)
    assert remove_unheld_ports(tmp_path) == []
