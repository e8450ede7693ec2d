"""What the device workers share: autostart, the heartbeat, /diagnostics, and `main`.

A worker is a LifecycleNode that owns one device and a hardware loop thread. Subclasses
implement the lifecycle callbacks, `diagnostic_status()` and `release_hardware()`; they start
their loop with `activate_loop()` and end it with `stop_loop()`. The loop
publishes through `self.loop_publisher` (publishing.py), never with `Publisher.publish()`: a
stalled DDS send must not stop the loop.
"""

from collections.abc import Callable
import logging
import threading
from typing import Any, ClassVar

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import rclpy
from rclpy._rclpy_pybind11 import RCLError
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn

from sensor_workers import qos
from sensor_workers.autostart import start_when_spinning
from sensor_workers.heartbeat import Heartbeat
from sensor_workers.lifetime import die_with_parent
from sensor_workers.params import declare
from sensor_workers.paths import CELL_PROFILE, fastdds_profile_in_use, use_fastdds_profile
from sensor_workers.publishing import LoopPublisher
from sensor_workers.topics import DIAGNOSTICS

DIAGNOSTICS_PERIOD_S = 1.0
# A hardware loop wakes at least this often to look at `loop_stop` (camera: retrieve timeout,
# F/T: select timeout), so one that has not ended after this long is stuck in the device.
LOOP_STOP_TIMEOUT_S = 5.0


class WorkerNode(LifecycleNode):
    """Base class of `camera` and `ft`."""

    # Messages the loop may hand its publisher before the oldest is dropped: a DDS stall this
    # many messages long costs no sample. Subclasses size it to their rate.
    PUBLISH_QUEUE = 1000
    PUBLISH_QUEUE_BYTES = 64 << 20
    # The shipped Fast DDS profile this worker loads when the user set none (paths.py): shared
    # memory only where the data needs it.
    FASTDDS_PROFILE = CELL_PROFILE
    # The node's name (a launch file or `-r __node:=...` renames it).
    NODE_NAME: ClassVar[str]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(self.NODE_NAME, **kwargs)
        self.autostart: bool = declare(
            self, 'autostart', False,
            'Configure and activate on start instead of waiting for the manager.',
            read_only=True)
        period_ms: int = declare(
            self, 'heartbeat_period_ms', 100,
            'Period of ~/heartbeat, sent from the hardware loop.',
            read_only=True, int_range=(10, 5000))
        self.loop_publisher = LoopPublisher(self.NODE_NAME, self.PUBLISH_QUEUE,
                                            self.PUBLISH_QUEUE_BYTES)
        # The hardware loop's thread while it runs, and the event that asks it to end.
        self.loop_thread: threading.Thread | None = None
        self.loop_stop = threading.Event()
        self.heartbeat = Heartbeat(self, period_ms / 1000.0, self.loop_publisher)
        self._diagnostics = self.create_publisher(DiagnosticArray, DIAGNOSTICS, qos.DIAGNOSTICS)
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        if self.autostart:
            start_when_spinning(self)

    def diagnostic_status(self) -> DiagnosticStatus:
        """Return this worker's status for /diagnostics."""
        raise NotImplementedError

    def pace_publishing(self, loop_messages_per_s: float) -> None:
        """Tell the publishing thread how fast the loop submits data messages (call on activate).

        A backlog after a DDS stall is then sent at twice that rate (heartbeats and /diagnostics
        included), which the product's subscribers can take (publishing.py).
        """
        self.loop_publisher.pace(loop_messages_per_s + 1.0 / self.heartbeat.period_s
                                 + 1.0 / DIAGNOSTICS_PERIOD_S)

    def flush_publishing(self) -> None:
        """Send what the stopped loop queued, before the lifecycle publishers go inactive."""
        if not self.loop_publisher.flush():
            self.get_logger().warning('publishing still held up by DDS; queued messages dropped')

    def activate_loop(self, state: State, loop: Callable[[], None],
                      name: str) -> TransitionCallbackReturn:
        """Enable the lifecycle publishers, then run `loop` in a thread of its own.

        Publishers first: a message the loop hands over before they are enabled would vanish
        silently, yet be counted as published.
        """
        self.loop_stop.clear()
        thread = threading.Thread(target=loop, name=name, daemon=True)
        result = super().on_activate(state)
        self.loop_thread = thread
        thread.start()
        return result

    def stop_loop(self) -> None:
        """Ask the hardware loop to end and wait for it (idempotent)."""
        thread, self.loop_thread = self.loop_thread, None
        if thread is None:
            return
        self.loop_stop.set()
        thread.join(timeout=LOOP_STOP_TIMEOUT_S)
        if thread.is_alive():
            self.get_logger().error(
                f'{thread.name} did not stop within {LOOP_STOP_TIMEOUT_S:g} s')

    def release_hardware(self) -> None:
        """Stop the hardware loop and close the device; must be idempotent."""
        raise NotImplementedError

    def on_error(self, state: State) -> TransitionCallbackReturn:
        self.release_hardware()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self.release_hardware()
        return TransitionCallbackReturn.SUCCESS

    def _publish_diagnostics(self) -> None:
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        status = self.diagnostic_status()
        # What every worker reports beside its own values: its longest DDS send since the last
        # report (a send stalled in DDS; the loop goes on meanwhile, publishing.py).
        longest_ms = self.loop_publisher.take_longest_send_s() * 1000
        status.values.append(KeyValue(key='longest_send_ms', value=f'{longest_ms:.1f}'))
        array.status = [status]
        # Not publish(): that holds the GIL while DDS sends, and a send stalled by a
        # shared-memory health check (up to 333 ms) stopped the read loop with it: the serial
        # buffer overflowed (64 F/T samples lost in one test run).
        self.loop_publisher.submit(self._diagnostics, array)


def run_worker(
    node_class: type[WorkerNode], args: list[str] | None = None, *,
    create: Callable[[], WorkerNode] | None = None, init: bool = True,
) -> None:
    """Spin a worker until SIGINT/SIGTERM, then release its hardware (the Jazzy idiom).

    `create` makes the node (default: `node_class()`). `init=False`: rclpy is initialized
    already (the manager's warm standby did it, after `use_fastdds_profile()`).
    """
    die_with_parent()
    logging.basicConfig(level=logging.INFO, format='[%(levelname)s] [%(name)s]: %(message)s')
    # A warm standby (init=False) set up DDS before: its take-over must not pay for that again.
    profile = (use_fastdds_profile(node_class.FASTDDS_PROFILE) if init
               else fastdds_profile_in_use())
    if init:
        rclpy.init(args=args)
    node = None
    try:
        node = (create or node_class)()
        node.get_logger().info(profile.describe())
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RCLError:
        # SIGTERM shut the context down while the executor was building its wait set: a normal
        # stop (exit 0), not a crash.
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            node.release_hardware()
            node.loop_publisher.stop()  # before its publishers go away with the node
            node.destroy_node()
        rclpy.try_shutdown()
