"""A test-side ROS node with its own context: collect topics, call services, drive lifecycles."""

from collections import deque
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
from rclpy.client import Client
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter as RclpyParameter
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile
from rclpy.serialization import serialize_message
from rclpy.subscription import Subscription

from sensor_workers.allocator import keep_large_buffers
from sensor_workers.params import outcomes, set_parameters_request
from sensor_workers.paths import use_fastdds_profile

# A lifecycle request unanswered this long may have been lost (see RosProbe.change_state).
LOST_REQUEST_S = 2.0
TRANSITIONS = {
    'configure': Transition.TRANSITION_CONFIGURE,
    'activate': Transition.TRANSITION_ACTIVATE,
    'deactivate': Transition.TRANSITION_DEACTIVATE,
    'cleanup': Transition.TRANSITION_CLEANUP,
    'shutdown': Transition.TRANSITION_ACTIVE_SHUTDOWN,
}
# The state a node is in, idle, before and after each transition.
START = {'configure': 'unconfigured', 'activate': 'inactive', 'deactivate': 'active',
         'cleanup': 'inactive', 'shutdown': 'active'}
GOAL = {'configure': 'inactive', 'activate': 'active', 'deactivate': 'inactive',
        'cleanup': 'unconfigured', 'shutdown': 'finalized'}

# A probe's `batch_s` for high-rate streams (see RosProbe): a 1 kHz stream costs ~14 % of a core
# instead of about half of one.
STREAM_BATCH_S = 0.01
# What one subscription of a probe may hold in messages: a test that keeps every 1 MB image of
# a module for minutes grew pytest to 23 GB. Counts and stream statistics are not bounded by it.
KEEP_BYTES = 64 << 20


@dataclass
class Received:
    """The newest messages of one subscription with their arrival times (monotonic clock).

    At most `keep` messages are held (the oldest go first); `total` counts all of them.
    """

    keep: int = 100_000
    messages: deque[Any] = field(default_factory=deque)
    arrival: deque[float] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    total: int = 0
    _sized: bool = False

    def add(self, message: Any, now: float) -> None:
        with self.lock:
            if not self._sized:
                # Size the window from the first message: images hold a few, wrenches many.
                size = max(1, len(serialize_message(message)))
                self.keep = max(2, min(self.keep, KEEP_BYTES // size))
                self._sized = True
            self.total += 1
            self.messages.append(message)
            self.arrival.append(now)
            if len(self.messages) > self.keep:
                self.messages.popleft()
                self.arrival.popleft()

    def count(self) -> int:
        """Messages received since the last clear() (also those no longer held)."""
        with self.lock:
            return self.total

    def snapshot(self) -> tuple[list[Any], list[float]]:
        with self.lock:
            return list(self.messages), list(self.arrival)

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()
            self.arrival.clear()
            self.total = 0


@dataclass
class StreamStats:
    """A stream as one independent subscriber sees it, in constant memory.

    Losses are counted from the publisher's sequence numbers (per writer; they restart at 1 when
    a new writer replaces the old one, which `writers` counts, and `new_writer_at` is when the
    newest writer's first message arrived). Gaps are between arrivals, timed when this process
    received each message, so a probe that takes them late does not make gaps of its own.
    """

    received: int = 0
    lost: int = 0
    writers: int = 0
    largest_gap_s: float = 0.0
    largest_gap_at: float = 0.0
    new_writer_at: float | None = None
    last_arrival: float | None = None
    last_sequence: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, sequence: int, now: float) -> None:
        with self.lock:
            self.received += 1
            if self.last_sequence is None or sequence <= self.last_sequence:
                self.writers += 1
                self.new_writer_at = now
            elif sequence > self.last_sequence + 1:
                self.lost += sequence - self.last_sequence - 1
            if self.last_arrival is not None and now - self.last_arrival > self.largest_gap_s:
                self.largest_gap_s = now - self.last_arrival
                self.largest_gap_at = self.last_arrival
            self.last_sequence, self.last_arrival = sequence, now

    def reset(self) -> None:
        """Start counting afresh from the next message (the writer stays known)."""
        with self.lock:
            self.received = self.lost = 0
            self.largest_gap_s = 0.0
            self.writers = 1 if self.last_sequence is not None else 0
            self.last_arrival = None


class RosProbe:
    """An rclpy node spun in a background thread, for tests and benchmarks.

    It spins a SingleThreadedExecutor, never rclpy's MultiThreadedExecutor: in rclpy 7.1.6 the
    latter's spin thread loops without waiting while a submitted callback has not started yet
    (ros2/rclpy#1452, fixed upstream by ros2/rclpy#1547), holding the GIL. Measured with the
    camera's 2448x2048 frames at 30 fps (reliable, history 30): a 4-thread probe burnt 91-98 % of a
    core and fell up to 1 s behind, so its reader history overflowed (31 of 213 frames lost on an
    idle machine, 61 of 150 in a CI run); the single-threaded one took 37-41 %, lagged 17-31 ms
    at p50 and lost none, also with a CPU hog per core. It also delivers every sample of a 1 kHz
    stream, where the multi-threaded one managed ~400 messages per second.

    It keeps freed multi-megabyte buffers for the next image (allocator.py): taking 2448x2048
    frames at 30 fps otherwise cost it 40 % of a core, mostly page faults; 12 % with it. Like
    our nodes it loads our Fast DDS profile, or the user's, with what that takes
    (`use_fastdds_profile()`), so what the workers' data meets here is what it meets at a
    subscriber configured as the cell is.

    Arrival times are when this process received a message (the DDS receive time, taken by the
    middleware's thread), not when the executor got to it. `batch_s` > 0 makes the probe cheap
    for high-rate streams: each turn of rclpy's executor costs ~0.45 ms of CPU here, so a 1 kHz
    stream taken one message per turn cost half a core (48-61 %), and a probe that fell behind
    on a busy machine lost messages from its own history (3 s behind on the F/T stream and 2597
    samples lost beside a camera restart under a CPU hog). With `batch_s` the spin thread waits
    that long after each turn and every subscription takes all its queued messages at once: at
    10 ms a 1 kHz stream costs ~14 % of a core. Service answers come up to that much later.
    """

    def __init__(self, name: str = 'probe', batch_s: float = 0.0) -> None:
        keep_large_buffers()
        use_fastdds_profile()
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.batch_s = batch_s
        self._clients: dict[str, Client] = {}
        self._thread = threading.Thread(target=self._spin, name=f'{name}-spin', daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            while self.context.ok():
                self.executor.spin_once(timeout_sec=0.1)
                if self.batch_s > 0:
                    time.sleep(self.batch_s)
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
                keep: int = 100_000) -> Received:
        """Subscribe and keep the newest messages with their arrival times.

        At most `keep` messages, and no more than KEEP_BYTES of them, are held.
        """
        received = Received(keep=keep)
        self._subscribe(msg_type, topic, qos, raw=False,
                        on_message=lambda msg, _info, arrival: received.add(msg, arrival))
        return received

    def count_stream(self, msg_type: type, topic: str, qos: QoSProfile | int) -> StreamStats:
        """Subscribe and count arrivals, losses and gaps without keeping any message.

        The subscription takes the serialized bytes: counting needs only the sequence number.
        Deserializing a 1 kHz wrench stream in Python as well made a probe with two such readers
        fall 0.4-0.7 s behind on a loaded machine, and three of them 3-4 s (bench.recovery then
        timed the probe's backlog, not the recovery).
        """
        stats = StreamStats()
        self._subscribe(msg_type, topic, qos, raw=True, on_message=lambda _serialized, info,
                        arrival: stats.add(info['publication_sequence_number'], arrival))
        return stats

    def _subscribe(self, msg_type: type, topic: str, qos: QoSProfile | int, raw: bool,
                   on_message: Callable[[Any, dict, float], None]) -> None:
        """Subscribe `on_message(message, info, arrival)`; with batching, take all queued ones."""
        subscription: Subscription

        def take(message: Any, info: dict) -> None:
            to_monotonic = time.monotonic() - time.time()
            on_message(message, info, arrival(info, to_monotonic))
            if self.batch_s <= 0:
                return
            # What the executor's own take does, for each message waiting behind this one.
            with subscription.handle:
                while (taken := subscription.handle.take_message(msg_type, raw)) is not None:
                    on_message(taken[0], taken[1], arrival(taken[1], to_monotonic))

        # rclpy hands a two-argument callback the message info too; its annotation omits that.
        subscription = self.node.create_subscription(
            msg_type, topic, take, qos, raw=raw)  # type: ignore[arg-type]

    def publisher(self, msg_type: type, topic: str, qos: QoSProfile | int = 10) -> Publisher:
        return self.node.create_publisher(msg_type, topic, qos)

    # Services

    def call(self, srv_type: type, name: str, request: Any, timeout: float = 5.0,
             resend_s: float | None = None) -> Any:
        """Call a service and return its response; raise TimeoutError on no answer.

        `resend_s` (idempotent services only): send the request again after this long without
        an answer. `wait_for_service` proves that this client sees the server, not that the
        server has matched this client yet: a request sent in between is lost.
        """
        requests = _Requests(self._client(srv_type, name), request, timeout)
        while not requests.answered(resend_s or timeout):
            requests.send()
        return requests.response()

    def _client(self, srv_type: type, name: str) -> Client:
        """Return the probe's client of service `name`, created on first use and kept.

        A server's first answer to a new client can stop every Python thread of the server for
        up to 100 ms: rmw_fastrtps waits (GIL held, as rclpy sends the response) until the
        server has matched the client's response reader. With a client per call, an answer to
        the probe stopped an F/T worker's read loop for 97 ms just after its activation.
        """
        if name not in self._clients:
            self._clients[name] = self.node.create_client(srv_type, name)
        return self._clients[name]

    def change_state(self, node_name: str, transition: str, timeout: float = 10.0) -> bool:
        """Trigger a lifecycle transition ('configure', 'activate', ...) on a node.

        Without an answer after LOST_REQUEST_S the node is asked its state: one busy in the
        transition does not answer (or says `configuring`, ...); one in the goal state is done
        (its answer was lost); one still idle in the start state never got the request, which
        is then sent again.
        """
        request = ChangeState.Request()
        request.transition.id = TRANSITIONS[transition]
        requests = _Requests(self._client(ChangeState, f'{node_name}/change_state'), request,
                             timeout)
        while not requests.answered(LOST_REQUEST_S):
            try:
                state = self.get_state(node_name, timeout=LOST_REQUEST_S)
            except TimeoutError:
                continue
            if state == GOAL[transition]:
                return True
            if state == START[transition]:
                requests.send()
        return requests.response().success

    def get_state(self, node_name: str, timeout: float = 5.0) -> str:
        response = self.call(GetState, f'{node_name}/get_state', GetState.Request(), timeout,
                             resend_s=1.0)
        return response.current_state.label

    def bring_up(self, node_name: str, timeout: float = 10.0) -> None:
        """Configure and activate a lifecycle node; raise with the reason if either fails.

        The state is asked first: so the node has answered every client used here before it
        streams (see `_client`).
        """
        self.get_state(node_name, timeout)
        for transition in ('configure', 'activate'):
            if not self.change_state(node_name, transition, timeout):
                raise RuntimeError(f'{node_name}: {transition} failed')
        state = self.get_state(node_name)
        if state != 'active':
            raise RuntimeError(f'{node_name} is {state}, not active')

    def set_parameters(self, node_name: str, values: dict[str, Any],
                       timeout: float = 5.0) -> list[tuple[bool, str]]:
        """Set parameters like `ros2 param set`; return (successful, reason) per parameter."""
        response = self.call(SetParameters, f'{node_name}/set_parameters',
                             set_parameters_request(values), timeout)
        return outcomes(response)

    def get_parameters(self, node_name: str, names: list[str], timeout: float = 5.0) -> list[Any]:
        request = GetParameters.Request(names=names)
        response = self.call(GetParameters, f'{node_name}/get_parameters', request, timeout)
        return [_parameter_value(v) for v in response.values]


class _Requests:
    """The requests of one service call (the first sent at once) and the first answer to any."""

    def __init__(self, client: Client, request: Any, timeout: float) -> None:
        self.client, self.request, self.timeout = client, request, timeout
        self.name = client.srv_name
        self.deadline = time.monotonic() + timeout
        self.done = threading.Event()
        self.futures: list = []
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f'service {self.name} not available within {timeout} s')
        self.send()

    def send(self) -> None:
        future = self.client.call_async(self.request)
        future.add_done_callback(lambda _: self.done.set())
        self.futures.append(future)

    def answered(self, within_s: float) -> bool:
        """Wait up to `within_s` for an answer; raise TimeoutError past the call's deadline."""
        if self.done.wait(max(0.0, min(within_s, self.deadline - time.monotonic()))):
            return True
        if time.monotonic() >= self.deadline:
            raise TimeoutError(f'service {self.name} did not answer within {self.timeout} s')
        return False

    def response(self) -> Any:
        return next(f for f in self.futures if f.done()).result()


def arrival(info: dict, to_monotonic: float) -> float:
    """When this process received a message, on the monotonic clock.

    `to_monotonic` converts wall-clock seconds (the middleware's receive stamp) to it.
    """
    received_ns = info.get('received_timestamp') or time.time_ns()
    return received_ns / 1e9 + to_monotonic


def _parameter_value(value: ParameterValue) -> Any:
    return RclpyParameter.from_parameter_msg(Parameter(name='_', value=value)).value
