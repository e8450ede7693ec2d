"""LoopPublisher: what a loop queues while DDS stalls reaches a subscriber in another process.

A backlog is what a worker holds after its send stalled (a shared-memory port being opened for
a new participant: docs/manager.md, "Fault isolation"). Sent back to back, bursts of 2000-4000
lost up to 20 % at an idle subscriber (publishing.py); the paced catch-up must lose nothing.
"""

import sys
import textwrap
import time

from geometry_msgs.msg import WrenchStamped
import pytest
import rclpy
from rclpy.context import Context
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from sensor_workers import qos
from sensor_workers.publishing import LoopPublisher
from sensor_workers.testing.ros_probe import RosProbe

pytestmark = pytest.mark.integration

# A publisher process on `/burst` with the product's stream QoS: it starts once a subscriber is
# matched, submits through a LoopPublisher, prints `sent` when everything went out.
PRELUDE = textwrap.dedent("""
    import time
    import rclpy
    from geometry_msgs.msg import WrenchStamped
    from sensor_workers import qos
    from sensor_workers.publishing import LoopPublisher
    rclpy.init()
    node = rclpy.create_node('burst_publisher')
    publisher = node.create_publisher(WrenchStamped, '/burst', qos.SENSOR_STREAM)
    deadline = time.monotonic() + 20
    while publisher.get_subscription_count() == 0:
        if time.monotonic() > deadline:  # say what the graph shows instead
            print('not matched; nodes:', node.get_node_names(), 'subscribers of /burst:',
                  node.count_subscribers('/burst'), flush=True)
            deadline += 20
        time.sleep(0.05)
    time.sleep(1.0)  # the subscriber's side of the match settles too
""")
# Then it stays until the test ends it: rclpy's SIGTERM handler shuts the context down and
# returns, so a plain sleep here outlived the SIGTERM (the test's teardown waited 5 s each).
SENT = textwrap.dedent("""
    assert loop.flush(10.0) and loop.dropped == 0 and loop.failed == 0
    print('sent', flush=True)
    deadline = time.monotonic() + 30
    while rclpy.ok() and time.monotonic() < deadline:
        time.sleep(0.05)
""")

# Sent back to back: 4 of 5 runs lost part of it (247 of 6000, or its tail).
BURST = 6000
# Submits BURST wrenches at once, as a loop does during a long stall.
BURST_PUBLISHER = PRELUDE + textwrap.dedent(f"""
    loop = LoopPublisher('burst', capacity={BURST})
    for _ in range({BURST}):
        loop.submit(publisher, WrenchStamped())
""") + SENT

# A 1 kHz loop whose sends stalled for 350 ms three times (the stall of a shared-memory port
# opened for a new participant). At 200 back to back then 10 kHz, such catch-ups lost ~140
# wrenches each at an idle rclpy subscriber with the product's QoS (KEEP_LAST 200).
STALLS, STALL_S, RATE_HZ = 3, 0.35, 1000
STREAM = STALLS * round((STALL_S + 1.0) * RATE_HZ)
STREAM_PUBLISHER = PRELUDE + textwrap.dedent(f"""
    loop = LoopPublisher('stream', capacity=5000, stream_rate_hz={RATE_HZ})
    message, due = WrenchStamped(), time.monotonic()
    for _ in range({STALLS}):
        for _ in range(round({STALL_S} * {RATE_HZ})):  # what queued up during the stall
            loop.submit(publisher, message)
        for _ in range({RATE_HZ}):  # then a second of normal operation
            due += 1.0 / {RATE_HZ}
            time.sleep(max(0.0, due - time.monotonic()))
            loop.submit(publisher, message)
""") + SENT


def received_and_lost(procs, script: str, expected: int, subscriber_qos) -> tuple[int, int]:
    """Run a publisher script; return what a subscriber in this process got of it, and lost."""
    probe = RosProbe('burst_probe')
    try:
        stream = probe.count_stream(WrenchStamped, '/burst', subscriber_qos)
        publisher = procs.start('publisher', [sys.executable, '-c', script])
        publisher.wait_for_output('^sent', timeout=60)
        # A lost tail shows as no later message: wait, then count.
        deadline = time.monotonic() + 10
        while stream.received + stream.lost < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        return stream.received, stream.lost
    finally:
        probe.close()


def test_the_longest_send_is_measured_and_taken_once():
    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node('longest_send', context=context)
    loop = LoopPublisher('longest_send', capacity=10)
    try:
        publisher = node.create_publisher(WrenchStamped, '/longest_send', qos.SENSOR_STREAM)
        for _ in range(5):
            loop.submit(publisher, WrenchStamped())
        assert loop.flush(5.0)
        assert 0.0 < loop.take_longest_send_s() < 5.0
        assert loop.take_longest_send_s() == 0.0
    finally:
        loop.stop()
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_a_backlog_reaches_another_process_whole(procs):
    deep = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2 * BURST,
                      reliability=ReliabilityPolicy.BEST_EFFORT)
    assert received_and_lost(procs, BURST_PUBLISHER, BURST, deep) == (BURST, 0)


def test_catch_ups_after_stalls_reach_a_subscriber_with_the_product_qos_whole(procs):
    assert received_and_lost(procs, STREAM_PUBLISHER, STREAM, qos.SENSOR_STREAM) == (STREAM, 0)
