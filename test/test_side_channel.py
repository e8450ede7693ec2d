"""The side channel's ring: order, wrap-around, torn reads, writer restarts, dead writers, files.

Files live in the test's own directory (any file system maps and futexes alike), not in
/dev/shm; the writer that gets killed is a process of its own.
"""

import os
from pathlib import Path
import signal
import sys
import threading

import numpy as np
import pytest

from sensor_workers.side_channel import layout
from sensor_workers.side_channel.cleanup import remove_dead_channels
from sensor_workers.side_channel.reader import FrameReader
from sensor_workers.side_channel.writer import ChannelBusy, FrameWriter
from sensor_workers.testing.waiting import wait_until

WRITER = Path(__file__).with_name('side_channel_writer.py')
W, H = 64, 48


def frame_of(number: int, size: int = W * H) -> np.ndarray:
    return np.full(size, number % 256, np.uint8)


def write(writer: FrameWriter, number: int, width: int = W, height: int = H) -> int:
    return writer.write(frame_of(number, width * height), number, width, height, width,
                        'mono8')


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / layout.channel_name(7, '/camera')


def test_the_name_tells_domains_and_cameras_apart():
    assert layout.channel_name(0, '/camera') == 'sensor_workers_frames.d0.camera'
    assert layout.channel_name(3, '/cell_2/camera_left') == \
        'sensor_workers_frames.d3.cell_2.camera_left'
    names = {layout.channel_name(d, n) for d in (1, 11) for n in ('/camera', '/camera_1',
                                                                   '/c/amera')}
    assert len(names) == 6


def test_a_reader_gets_every_frame_in_order_with_its_pixels_and_fields(path):
    writer = FrameWriter(path, slot_count=4)
    reader = FrameReader(path)
    try:
        assert reader.read() is None  # opened, nothing written yet
        got = []
        for number in range(1, 11):
            write(writer, number)
            frame = reader.read()
            got.append(frame.stamp_ns)
            assert (frame.width, frame.height, frame.step, frame.encoding) == (W, H, W, 'mono8')
            assert frame.array().shape == (H, W)
            assert (frame.array() == number % 256).all()
        assert got == list(range(1, 11))
        assert reader.read() is None
        assert (reader.frames, reader.skipped, reader.torn) == (10, 0, 0)
    finally:
        reader.close()
        writer.close()


def test_wrap_around_a_reader_behind_gets_what_the_ring_still_holds_then_catches_up(path):
    writer = FrameWriter(path, slot_count=4)
    write(writer, 1)
    reader = FrameReader(path)
    try:
        assert reader.read().stamp_ns == 1
        for number in range(2, 4):  # two behind: still in the ring, nothing lost
            write(writer, number)
        assert [reader.read().stamp_ns for _ in range(2)] == [2, 3]
        for number in range(4, 14):  # ten behind, four slots hold frames 10-13
            write(writer, number)
        # The writer may be rewriting frame 10's slot already: reading resumes at 11.
        assert [reader.read().stamp_ns for _ in range(3)] == [11, 12, 13]
        assert reader.read() is None
        assert (reader.skipped, reader.torn) == (7, 0)
        write(writer, 14)
        write(writer, 15)
        assert reader.read(newest=True).stamp_ns == 15
        assert reader.skipped == 8
    finally:
        reader.close()
        writer.close()


def test_a_frame_overwritten_while_copied_is_detected_never_returned_torn(path):
    # 2 MB frames, 3 slots, a writer rewriting them back to back in another thread (numpy
    # copies release the GIL): copies overlap rewrites. Every frame returned is whole.
    size = 2 << 20
    writer = FrameWriter(path, slot_count=3, frame_bytes=size)
    frames = [frame_of(n, size) for n in range(16)]
    stop = threading.Event()

    def write_forever() -> None:
        number = 0
        while not stop.is_set():
            number += 1
            writer.write(frames[number % 16], number, size, 1, size, 'mono8')

    thread = threading.Thread(target=write_forever)
    reader = FrameReader(path)
    thread.start()
    try:
        returned = 0
        while reader.torn < 5 and returned < 20000:
            frame = reader.read()
            if frame is not None:
                returned += 1
                assert (frame.data == frame.stamp_ns % 16).all(), f'frame {frame.stamp_ns} torn'
        assert reader.torn >= 5, f'no overwrite caught in {returned} reads'
    finally:
        stop.set()
        thread.join()
        reader.close()
        writer.close()


def test_a_frame_read_in_place_tells_when_the_writer_came_round_to_its_slot(path):
    writer = FrameWriter(path, slot_count=3)
    reader = FrameReader(path)
    try:
        write(writer, 1)
        frame = reader.read(copy=False)
        assert not frame.data.flags.writeable and (frame.data == 1).all()
        write(writer, 2)
        write(writer, 3)
        assert reader.intact(frame)
        write(writer, 4)  # into frame 1's slot
        assert not reader.intact(frame) and (frame.data == 4).all()
    finally:
        reader.close()
        writer.close()


def test_frames_outgrowing_the_slots_relay_the_file_as_a_new_generation(path):
    writer = FrameWriter(path, slot_count=3)
    reader = FrameReader(path)
    try:
        write(writer, 1)
        assert reader.read().width == W
        write(writer, 2, 640, 480)  # 300 KB: larger than the slots of 3 KB frames
        frame = reader.read()
        assert (frame.width, frame.height, frame.seq, frame.stamp_ns) == (640, 480, 1, 2)
        assert (frame.array() == 2).all()
        assert reader.restarts == 1
    finally:
        reader.close()
        writer.close()


def test_a_killed_writers_file_is_taken_over_and_existing_readers_read_on(path, procs):
    first = procs.start('writer', [sys.executable, str(WRITER), str(path), '4', '200'])
    first.wait_for_output('^ready', timeout=30.0)
    reader = FrameReader(path)
    try:
        wait_until(lambda: reader.read() is not None, 5, 'a frame of the first writer')
        generation = reader.generation
        assert reader.writer_alive()
        first.signal(signal.SIGKILL)
        first.popen.wait(5)
        # A dead writer: no error, no frame, and the reader can tell.
        assert not reader.writer_alive()
        while reader.read() is not None:  # what it wrote before dying
            pass
        assert reader.read() is None
        inode = path.stat().st_ino
        second = FrameWriter(path, slot_count=4)  # as the camera's standby does
        try:
            assert path.stat().st_ino == inode  # taken over, not replaced
            assert second.generation == generation + 1
            write(second, 5)
            frame = reader.read()
            assert (frame.generation, frame.seq, frame.stamp_ns) == (generation + 1, 1, 5)
            assert reader.restarts >= 1 and reader.writer_alive()
        finally:
            second.close()
        assert not path.exists()  # a clean stop removes it
    finally:
        reader.close()


def test_a_second_live_writer_of_the_same_channel_is_refused(path):
    writer = FrameWriter(path)
    try:
        with pytest.raises(ChannelBusy):
            FrameWriter(path)
    finally:
        writer.close()


def test_a_reader_waits_for_a_writer_and_follows_a_clean_restart_to_a_new_file(path):
    reader = FrameReader(path)
    try:
        assert reader.wait(0.05) is None and not reader.is_open  # no file yet
        writer = FrameWriter(path)
        write(writer, 1)
        assert reader.wait(1.0).stamp_ns == 1
        writer.close()  # removed
        assert reader.read() is None and not reader.is_open
        writer = FrameWriter(path)
        write(writer, 2)
        assert reader.read().stamp_ns == 2
        writer.close()
    finally:
        reader.close()


def test_a_sleeping_reader_wakes_for_a_frame_at_once(path):
    writer = FrameWriter(path)
    reader = FrameReader(path)
    try:
        assert reader.read() is None
        timer = threading.Timer(0.1, write, (writer, 1))
        timer.start()
        frame = reader.wait(5.0)
        timer.join()
        assert frame is not None and frame.stamp_ns == 1
    finally:
        reader.close()
        writer.close()


def test_cleanup_removes_only_files_without_a_live_writer(tmp_path, procs):
    dead = tmp_path / layout.channel_name(7, '/dead')
    killed = procs.start('writer', [sys.executable, str(WRITER), str(dead), '4', '100'])
    killed.wait_for_output('^ready', timeout=30.0)
    killed.signal(signal.SIGKILL)
    killed.popen.wait(5)
    live = FrameWriter(tmp_path / layout.channel_name(7, '/live'))
    try:
        for path in (dead, live.path):
            os.utime(path, (0, 0))  # past the guard for files being created
        assert remove_dead_channels(tmp_path) == [dead]
        assert live.path.exists()
    finally:
        live.close()
