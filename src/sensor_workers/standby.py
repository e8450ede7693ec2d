"""Warm standby: a worker interpreter, imported and discovered, waiting to take over a device.

    python -m sensor_workers.standby <worker module> --ros-args <the worker's args>

A restart from scratch pays for a fresh interpreter importing rclpy and the worker (about
0.5-1 s on a loaded 2-core machine) and for DDS discovering a new participant (0.3 s typically,
seconds in the tail). The manager keeps one standby per active device: it has imported the
worker module, initialized rclpy and created a hidden placeholder node, so its participant is
known to every peer already. On `go` (a line on stdin) it runs the worker in the same context
and drops the placeholder once the worker node exists: only the worker's endpoints are new, and
those are announced at once. End of stdin (the manager closed it or died) ends the standby.
Once ready it says so with a heartbeat record (heartbeat.py): the manager reports `standby:
ready` in /manager/device_states.

The order matters: rmw_fastrtps destroys a context's DDS participant with its last node. Dropping
the placeholder first (as this module once did) made every take-over a brand-new participant:
~95 ms to create it, then every peer had to discover it and health-check its shared-memory ports
(up to 333 ms per peer, in that peer's sending thread) before the first sample got through.

Before `go` the standby also loads the type support of every ROS interface imported so far (the
worker's messages, lifecycle and parameter services): loaded lazily, by the first publisher or
service of each type, they were half of the worker node's construction time (87 -> 45 ms).
"""

import importlib
import select
import sys

import rclpy
from rclpy._rclpy_pybind11 import RCLError
from rclpy.type_support import check_for_type_support

from sensor_workers.heartbeat import announce_standby_ready
from sensor_workers.lifetime import die_with_parent
from sensor_workers.paths import use_fastdds_profile
from sensor_workers.worker import WorkerNode, run_worker

POLL_S = 0.5


def worker_class(module_name: str) -> type[WorkerNode]:
    """Return the WorkerNode subclass defined in a worker module."""
    module = importlib.import_module(module_name)
    for value in vars(module).values():
        if (isinstance(value, type) and issubclass(value, WorkerNode)
                and value.__module__ == module.__name__):
            return value
    raise LookupError(f'{module_name} defines no WorkerNode subclass')


def load_type_supports() -> int:
    """Load the type support of every message and service class imported so far; return how many.

    ROS interface classes live in `<package>.msg` / `<package>.srv` modules and are recognised by
    their generated `__import_type_support__` hook.
    """
    loaded = 0
    for name, module in list(sys.modules.items()):
        if module is None or name.rpartition('.')[2] not in ('msg', 'srv'):
            continue
        for value in vars(module).values():
            if isinstance(value, type) and hasattr(value, '__import_type_support__'):
                check_for_type_support(value)
                loaded += 1
    return loaded


def wait_for_go() -> bool:
    """Block until the manager says `go` (True) or goes away (False)."""
    while rclpy.ok():
        ready, _, _ = select.select([sys.stdin], [], [], POLL_S)
        if ready:
            return sys.stdin.readline().strip() == 'go'
    return False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    die_with_parent()
    node_class = worker_class(argv[1])
    args = [argv[0], *argv[2:]]
    use_fastdds_profile(node_class.FASTDDS_PROFILE)
    rclpy.init(args=args)
    try:
        placeholder = rclpy.create_node(f'_standby_{node_class.__name__.lower()}',
                                        use_global_arguments=False)
    except RCLError:
        if rclpy.ok():
            raise
        return 0  # SIGTERM (the manager stopping) shut the context down while we started
    load_type_supports()
    announce_standby_ready()
    if not wait_for_go():
        placeholder.destroy_node()
        rclpy.try_shutdown()
        return 0

    def take_over() -> WorkerNode:
        node = node_class()
        placeholder.destroy_node()  # not before: the participant would go with it
        return node

    run_worker(node_class, args, create=take_over, init=False)
    return 0


if __name__ == '__main__':
    sys.exit(main())
