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

