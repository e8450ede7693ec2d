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
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from sensor_workers import qos
from sensor_workers.testing.ros_probe import RosProbe

pytestmark = pytest.mark.integration

# Sent back to back: 4 of 5 runs lost part of it (247 of 6000, or its tail).
BURST = 6000
# Submits BURST wrenches at once once a subscriber is matched, as a loop does during a stall.
PUBLISHER = textwrap.dedent(f"""
    import time
    import rclpy
    from geometry_msgs.msg import WrenchStamped
    from rclpy.qos import qos_profile_sensor_data
    from sensor_workers.publishing import LoopPublisher
    rclpy.init()
    node = rclpy.create_node('burst_publisher')
    publisher = node.create_publisher(WrenchStamped, '/burst', qos_profile_sensor_data)
    deadline = time.monotonic() + 20
    while publisher.get_subscription_count() == 0:
        if time.monotonic() > deadline:  # say what the graph shows instead
            print('not matched; nodes:', node.get_node_names(), 'subscribers of /burst:',
                  node.count_subscribers('/burst'), flush=True)
            deadline += 20
        time.sleep(0.05)
    time.sleep(1.0)  # the subscriber's side of the match settles too
    loop = LoopPublisher('burst', capacity={BURST})
    for _ in range({BURST}):
        loop.submit(publisher, WrenchStamped())
    assert loop.flush(10.0) and loop.dropped == 0 and loop.failed == 0
    print('sent', flush=True)
    time.sleep(30)
""")


def test_a_backlog_reaches_another_process_whole(procs):
    probe = RosProbe('burst_probe', threads=1)
    try:
        stream = probe.count_stream(
            WrenchStamped, '/burst', QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2 * BURST,
                                                reliability=ReliabilityPolicy.BEST_EFFORT))
        publisher = procs.start('publisher', [sys.executable, '-c', PUBLISHER])
        publisher.wait_for_output('^sent', timeout=60)
        # The burst's tail, when lost, shows as no later message: wait, then count.
        deadline = time.monotonic() + 10
        while stream.received + stream.lost < BURST and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (stream.received, stream.lost) == (BURST, 0)
    finally:
        probe.close()



# A 1 kHz loop whose sends stalled for 350 ms three times (the stall of a shared-memory port
# opened for a new participant), into the product's subscriber QoS (KEEP_LAST 200). At 200 back
# to back then 10 kHz, such catch-ups lost ~140 wrenches each at an idle rclpy subscriber.
STALLS, STALL_S, RATE_HZ = 3, 0.35, 1000
STREAM = STALLS * round((STALL_S + 1.0) * RATE_HZ)
STREAM_PUBLISHER = textwrap.dedent(f"""
    import time
    import rclpy
    from geometry_msgs.msg import WrenchStamped
    from sensor_workers import qos
    from sensor_workers.publishing import LoopPublisher
    rclpy.init()
    node = rclpy.create_node('stream_publisher')
    publisher = node.create_publisher(WrenchStamped, '/stream', qos.SENSOR_STREAM)
    while publisher.get_subscription_count() == 0:
        time.sleep(0.05)
    time.sleep(1.0)
    loop = LoopPublisher('stream', capacity=5000, stream_rate_hz={RATE_HZ})
    message, due = WrenchStamped(), time.monotonic()
    for _ in range({STALLS}):
        for _ in range(round({STALL_S} * {RATE_HZ})):  # what queued up during the stall
            loop.submit(publisher, message)
        for _ in range({RATE_HZ}):  # then a second of normal operation
            due += 1.0 / {RATE_HZ}
            time.sleep(max(0.0, due - time.monotonic()))
            loop.submit(publisher, message)
    assert loop.flush(10.0) and loop.dropped == 0 and loop.failed == 0
    print('sent', flush=True)
    time.sleep(30)
""")


def test_catch_ups_after_stalls_reach_a_subscriber_with_the_product_qos_whole(procs):
    probe = RosProbe('stream_probe', threads=1)
    try:
        stream = probe.count_stream(WrenchStamped, '/stream', qos.SENSOR_STREAM)
        publisher = procs.start('publisher', [sys.executable, '-c', STREAM_PUBLISHER])
        publisher.wait_for_output('^sent', timeout=60)
        deadline = time.monotonic() + 10
        while stream.received + stream.lost < STREAM and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (stream.received, stream.lost) == (STREAM, 0)
    finally:
        probe.close()
