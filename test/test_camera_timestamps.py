"""Camera tick -> ROS time mapping, on synthetic clocks (no camera, no ROS)."""

import random

from sensor_workers.camera.timestamps import NS_PER_S, TimestampMapper

HOST_EPOCH_NS = 1_700_000_000 * NS_PER_S


def simulate(mapper, seconds, fps=30.0, drift_ppm=0.0, tick_ns=1.0, seed=1, camera_start_ns=5e9):
    """Yield (true exposure time on the host clock, mapped time) for a camera with latency."""
    rng = random.Random(seed)
    period_ns = NS_PER_S / fps
    for i in range(int(seconds * fps)):
        true_host_ns = HOST_EPOCH_NS + int(i * period_ns)
        camera_ns = camera_start_ns + i * period_ns * (1.0 + drift_ppm * 1e-6)
        # Transfer plus queueing: 2 ms floor, exponential tail, an occasional 40 ms stall.
        latency_ns = 2_000_000 + int(rng.expovariate(1 / 3e6))
        if rng.random() < 0.02:
            latency_ns += 40_000_000
        ticks = int(camera_ns / tick_ns)
        yield true_host_ns, mapper.map(ticks, true_host_ns + latency_ns), true_host_ns + latency_ns


def test_zero_ticks_fall_back_to_host_time():
    mapper = TimestampMapper()
    assert mapper.map(0, 123_456_789) == 123_456_789
    assert mapper.source == 'host'


def test_offset_removes_latency_jitter():
    mapper = TimestampMapper()
    errors = [mapped - true for true, mapped, _ in simulate(mapper, 20.0)][60:]
    assert mapper.source == 'camera'
    # The min filter lands on the latency floor (2 ms) with well under a millisecond of spread,
    # where host time at receipt would spread over 40+ ms.
    assert all(1_500_000 <= e <= 3_000_000 for e in errors), (min(errors), max(errors))
    spread = max(errors) - min(errors)
    assert spread < 1_000_000


def test_drift_is_followed():
    # 100 ppm is 0.1 ms/s: after 60 s a fixed offset would be 6 ms off.
    mapper = TimestampMapper()
    errors = [mapped - true for true, mapped, _ in simulate(mapper, 60.0, drift_ppm=100.0)]
    late = errors[-300:]
    assert max(late) - min(late) < 1_000_000
    assert all(1_000_000 <= e <= 3_500_000 for e in late), (min(late), max(late))


def test_gige_tick_frequency():
    mapper = TimestampMapper(tick_ns=8.0)  # a 125 MHz GigE timestamp clock
    errors = [mapped - true for true, mapped, _ in simulate(mapper, 10.0, tick_ns=8.0)][60:]
    assert all(1_500_000 <= e <= 3_000_000 for e in errors)


def test_never_later_than_receipt_and_resets_on_camera_reset():
    mapper = TimestampMapper()
    for _, mapped, received in simulate(mapper, 5.0):
        assert mapped <= received
    # The camera restarts its clock (reconnect): ticks go back to near zero.
    resets = mapper.resets
    host_ns = HOST_EPOCH_NS + 6 * NS_PER_S
    mapped = mapper.map(1_000, host_ns)
    assert mapper.resets == resets + 1
    assert mapped == host_ns
    # A host clock step of several seconds also starts over instead of stamping wrongly.
    mapper.map(2_000_000, host_ns + 1_000_000)
    mapped = mapper.map(3_000_000, host_ns + 10 * NS_PER_S)
    assert mapper.resets == resets + 2
    assert mapped == host_ns + 10 * NS_PER_S
