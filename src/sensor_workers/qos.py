"""QoS profiles shared by the workers, the manager and the bridge.

Publishers and subscribers of one topic take their profile from here, so they always match.
"""

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.qos_overriding_options import QoSOverridingOptions

# Sensor streams: best effort, keep last 5 (rclpy's sensor-data profile). Integrators can switch
# reliability or depth per topic through `qos_overrides.<topic>.publisher.*` parameters.
SENSOR_DATA = qos_profile_sensor_data

# High-rate streams (the F/T sensor at up to ~1 kHz): still best effort, but over Fast DDS shared
# memory a best-effort reader takes samples from the writer's history, so a depth of 5 loses
# samples whenever a subscriber wakes 5 ms late. 200 samples is 200 ms at 1 kHz.
SENSOR_STREAM = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=200,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)

# Heartbeats must not be lost in transit: a lost one would look like a dead worker.
HEARTBEAT = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)

# Latched state: a late subscriber (bridge, rqt) gets the current device states and the recent
# safety events at once.
LATCHED = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
LATCHED_EVENTS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=50,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)

DIAGNOSTICS = QoSProfile(depth=10)

# The bridge's readers. Best effort like the publishers. A deep wrench history lets a briefly
# late executor catch up on 1 kHz samples instead of losing them; the bridge serves the newest
# frames, so a few suffice for images.
WRENCH_READER = QoSProfile(depth=500, reliability=ReliabilityPolicy.BEST_EFFORT,
                           history=HistoryPolicy.KEEP_LAST)
IMAGE_READER = QoSProfile(depth=4, reliability=ReliabilityPolicy.BEST_EFFORT,
                          history=HistoryPolicy.KEEP_LAST)
# Topics only Foxglove clients get (temperature, camera_info): best effort matches any writer.
SENSOR_READER = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT,
                           history=HistoryPolicy.KEEP_LAST)
# Reliable, like every node's /rosout writer; volatile: no replay of old lines at start.
ROSOUT_READER = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                           history=HistoryPolicy.KEEP_LAST)


def overridable() -> QoSOverridingOptions:
    """Let reliability, depth and history of a publisher be overridden by parameters."""
    return QoSOverridingOptions.with_default_policies()
