"""A test-side ROS node with its own context: collect topics, call services, drive lifecycles."""

from collections.abc import Callable
from dataclasses import dataclass, field
import threading
import time
from typing import Any

from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Parameter, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
import rclpy
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter as RclpyParameter
from rclpy.qos import QoSProfile

TRANSITIONS = {
    'configure': Transition.TRANSITION_CONFIGURE,
    'activate': Transition.TRANSITION_ACTIVATE,
    'deactivate': Transition.TRANSITION_DEACTIVATE,
    'cleanup': Transition.TRANSITION_CLEANUP,
    'shutdown': Transition.TRANSITION_ACTIVE_SHUTDOWN,
}

@dataclass
class Received:
    """Messages of one subscription with their monotonic arrival times."""

    messages: list[Any] = field(default_factory=list)
    arrival: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def snapshot(self) -> tuple[list[Any], list[float]]:
        with self.lock:
            return list(self.messages), list(self.arrival)

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()
            self.arrival.clear()

class RosProbe:
    """An rclpy node spun in a background thread, for tests and benchmarks."""

    def __init__(self, name: str = 'probe', threads: int = 4) -> None:
        """Spin with `threads` executor threads; 1 uses the (much faster) single-threaded one."""
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node(name, context=self.context)
        if threads == 1:
            self.executor = SingleThreadedExecutor(context=self.context)
        else:
            self.executor = MultiThreadedExecutor(num_threads=threads, context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name=f'{name}-spin', daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 context shut down under us at close()
            pass

    def close(self) -> None:
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5.0)
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()

    def __enter__(self) -> 'RosProbe':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Topics

    def collect(self, msg_type: type, topic: str, qos: QoSProfile | int = 10,
                callback: Callable[[Any], None] | None = None) -> Received:
        """Subscribe and keep every message with its arrival time."""
        received = Received()

        def on_message(msg: Any) -> None:
            now = time.monotonic()
            with received.lock:
                received.messages.append(msg)
                received.arrival.append(now)
            if callback is not None:
                callback(msg)

        self.node.create_subscription(msg_type, topic, on_message, qos)
        return received

    def publisher(self, msg_type: type, topic: str, qos: QoSProfile | int = 10):
        return self.node.create_publisher(msg_type, topic, qos)

    # Services

    def call(self, srv_type: type, name: str, request: Any, timeout: float = 5.0) -> Any:
        """Call a service and return its response; raise TimeoutError on no answer."""
        client = self.node.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f'service {name} not available within {timeout} s')
            future = client.call_async(request)
            done = threading.Event()
            future.add_done_callback(lambda _: done.set())
            if not done.wait(timeout):
                raise TimeoutError(f'service {name} did not answer within {timeout} s')
            return future.result()
        finally:
            self.node.destroy_client(client)

    def change_state(self, node_name: str, transition: str, timeout: float = 10.0) -> bool:
        """Trigger a lifecycle transition ('configure', 'activate', ...) on a node."""
        request = ChangeState.Request()
        request.transition.id = TRANSITIONS[transition]
        return self.call(ChangeState, f'{node_name}/change_state', request, timeout).success

    def get_state(self, node_name: str, timeout: float = 5.0) -> str:
        response = self.call(GetState, f'{node_name}/get_state', GetState.Request(), timeout)
        return response.current_state.label

    def bring_up(self, node_name: str, timeout: float = 10.0) -> None:
        """Configure and activate a lifecycle node; raise with the reason if either fails."""
        for transition in ('configure', 'activate'):
            if not self.change_state(node_name, transition, timeout):
                raise RuntimeError(f'{node_name}: {transition} failed')
        state = self.get_state(node_name)
        if state != 'active':
            raise RuntimeError(f'{node_name} is {state}, not active')

    def set_parameters(self, node_name: str, values: dict[str, Any],
                       timeout: float = 5.0) -> list[tuple[bool, str]]:
        """Set parameters like `ros2 param set`; return (successful, reason) per parameter."""
        request = SetParameters.Request()
        request.parameters = [
            Parameter(name=name, value=RclpyParameter(name, value=value).get_parameter_value())
            for name, value in values.items()
        ]
        response = self.call(SetParameters, f'{node_name}/set_parameters', request, timeout)
        return [(r.successful, r.reason) for r in response.results]

    def get_parameters(self, node_name: str, names: list[str], timeout: float = 5.0) -> list[Any]:
        request = GetParameters.Request(names=names)
        response = self.call(GetParameters, f'{node_name}/get_parameters', request, timeout)
        return [_parameter_value(v) for v in response.values]

def _parameter_value(value: ParameterValue) -> Any:
    return RclpyParameter.from_parameter_msg(Parameter(name='_', value=value)).value
