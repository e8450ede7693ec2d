"""Spin a measuring node in a probe process until SIGINT/SIGTERM or its deadline."""

import signal
import threading
import time


def spin_until_stopped(node, max_seconds: float, ready_line: str) -> None:
    """Print `ready_line`, spin `node` with an EventsExecutor, then shut rclpy down.

    The probes stop by themselves after `max_seconds` even if nobody stops them.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.experimental import EventsExecutor

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    executor = EventsExecutor()
    executor.add_node(node)
    deadline = time.monotonic() + max_seconds
    print(ready_line, flush=True)
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
