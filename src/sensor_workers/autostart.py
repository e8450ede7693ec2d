"""Bring a lifecycle node to `active` by itself once its executor spins."""

from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn


def start_when_spinning(node: LifecycleNode) -> None:
    """Configure and then activate `node` from a one-shot timer; log a failed step once.

    A failed configure leaves the node unconfigured and a failed activate leaves it inactive,
    as the transitions define, so whoever drives the lifecycle next sees a defined state.
    """

    def run() -> None:
        node.destroy_timer(timer)
        if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            node.get_logger().error('autostart: configure failed; staying unconfigured')
            return
        if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            node.get_logger().error('autostart: activate failed; staying inactive')

    timer = node.create_timer(0.0, run)
