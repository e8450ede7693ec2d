"""The `bridge` node: uvicorn + FastAPI in the main thread, the rclpy executor in another.

ROS callbacks only convert a message into plain data and hand it to the hub (a deque append or
`loop.call_soon_threadsafe`); service calls made for HTTP requests are awaited as asyncio
futures, so neither side ever blocks the other. Every served topic has one raw subscription:
the serialized bytes go to Foxglove clients as received, and the bridge's own consumers get the
message deserialized from the same bytes (one DDS reader per topic, not two).
"""

import asyncio
from collections.abc import Callable, Iterable
import functools
import logging
import os
import signal
import socket
import sys
import threading
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from fastapi import FastAPI
from geometry_msgs.msg import WrenchStamped
from rcl_interfaces.msg import Log, ParameterType
from rcl_interfaces.srv import GetParameters, GetParameterTypes, ListParameters, SetParameters
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.experimental import EventsExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter as RclpyParameter
from rclpy.parameter import parameter_value_to_python
from rclpy.qos import QoSProfile
from rclpy.serialization import deserialize_message
from rclpy.signals import SignalHandlerOptions
from rclpy.task import Future
from sensor_msgs.msg import CameraInfo, Image, Temperature
from std_srvs.srv import Trigger
import uvicorn

from sensor_workers import qos
from sensor_workers.bridge.app import create_app
from sensor_workers.bridge.foxglove.channels import Channel
from sensor_workers.bridge.foxglove.schema import SchemaNotFound, message_schema
from sensor_workers.bridge.hub import Hub
from sensor_workers.bridge.image_sources import ImageSources
from sensor_workers.bridge.request_checks import ServiceTimeout, ServiceUnavailable
from sensor_workers.bridge.settings import BridgeSettings, bounds
from sensor_workers.bridge.stop_request import StopRequest
from sensor_workers.diagnostics import level_of, status_values
from sensor_workers.heartbeat import HeartbeatRecord
from sensor_workers.params import declare, outcomes, set_parameters_request
from sensor_workers.paths import UDP_PROFILE, use_fastdds_profile
from sensor_workers.stamps import stamp_ns
from sensor_workers.topics import DIAGNOSTICS, WORKER_EVENTS, device_states_topic, heartbeat_topic

log = logging.getLogger(__name__)


def _plain(status: DiagnosticStatus) -> dict[str, Any]:
    return {'name': status.name, 'level': level_of(status), 'message': status.message,
            'hardware_id': status.hardware_id, 'values': status_values(status)}


def type_name(msg_type: type) -> str:
    """Return the ROS name of a message class (`geometry_msgs/msg/WrenchStamped`)."""
    return f'{msg_type.__module__.split(".")[0]}/msg/{msg_type.__name__}'


def _namespace(topic: str) -> str:
    return topic.rsplit('/', 1)[0]


def _declare_settings(node: Node) -> BridgeSettings:
    """Declare every setting as a read-only parameter of `node`; return their values."""
    values: dict[str, Any] = {}
    for name, field in BridgeSettings.model_fields.items():
        default = field.default
        if isinstance(default, tuple):
            # An empty array has no type in ROS: declare the type instead (unset = empty).
            default = list(default) if default else RclpyParameter.Type.STRING_ARRAY
        is_float = isinstance(field.default, float)
        value = declare(node, name, default, field.description or '', read_only=True,
                        int_range=None if is_float else bounds(field),
                        float_range=bounds(field) if is_float else None)
        values[name] = [] if value is None else value
    return BridgeSettings(**values)


class BridgeNode(Node):
    """Subscribes to the device topics for the hub and makes the service calls of the API."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('bridge', **kwargs)
        self.settings = _declare_settings(self)
        self.hub = Hub(self.settings)
        self._ros_thread: RosThread | None = None
        # Set when the executor thread died: the process then stops and exits 1, instead of
        # serving web clients with no ROS data behind them.
        self.ros_thread_failed = False
        self._service_clients: dict[str, Any] = {}
        self._create_interfaces()

    def _create_interfaces(self) -> None:
        s, hub = self.settings, self.hub
        self._serve(WrenchStamped, s.wrench_topic, qos.WRENCH_READER, self._on_wrench)
        self._serve(Temperature, f'{_namespace(s.wrench_topic)}/temperature', qos.SENSOR_READER)
        images = {}
        for camera, topic in s.camera_topics().items():
            images[camera] = self._channel(topic, Image)
            self._serve(CameraInfo, f'{_namespace(topic)}/camera_info', qos.SENSOR_READER)
        self.image_sources = ImageSources(self, hub.images, qos.IMAGE_READER, hub.push_image,
                                          s.image_side_channel, hub.foxglove, images)
        self._serve(DiagnosticArray, device_states_topic(s.manager_name), qos.LATCHED,
                    lambda msg: hub.push_device_states([_plain(st) for st in msg.status]))
        self._serve(DiagnosticStatus, WORKER_EVENTS, qos.LATCHED_EVENTS,
                    lambda msg: hub.push_worker_event(_plain(msg)))
        self._serve(DiagnosticArray, DIAGNOSTICS, qos.DIAGNOSTICS, self._on_diagnostics)
        self._serve(Log, '/rosout', qos.ROSOUT_READER,
                    lambda msg: hub.push_log(msg.name, msg.level, msg.msg, stamp_ns(msg)))
        for device in s.devices:
            self._serve(DiagnosticStatus, heartbeat_topic(device), qos.HEARTBEAT,
                        functools.partial(self._on_heartbeat, device))
            # Clients exist from the start: adding entities to a spinning node is avoided.
            for srv_type, name in self._device_services(device):
                self._service_clients[name] = self.create_client(srv_type, name)

    def _channel(self, topic: str, msg_type: type) -> Channel | None:
        """Offer `topic` to Foxglove clients; None when its schema cannot be built."""
        try:
            return self.hub.foxglove.add_channel(topic, type_name(msg_type),
                                                 message_schema(type_name(msg_type)))
        except SchemaNotFound as error:
            self.get_logger().warning(f'{topic} not served to Foxglove clients: {error}')
            return None

    def _serve(self, msg_type: type, topic: str, profile: QoSProfile,
               on_message: Callable[[Any], None] | None = None) -> None:
        """Subscribe to `topic` raw: Foxglove clients get the bytes, `on_message` the message."""
        fanout, channel = self.hub.foxglove, self._channel(topic, msg_type)

        def callback(data: bytes) -> None:
            if channel is not None:
                fanout.push(channel, data)
            if on_message is not None:
                on_message(deserialize_message(data, msg_type))

        self.create_subscription(msg_type, topic, callback, profile, raw=True)

    def _on_heartbeat(self, device: str, status: DiagnosticStatus) -> None:
        try:
            record = HeartbeatRecord.from_status(status)
        except ValueError as error:
            self.get_logger().warning(f'/{device}/heartbeat: {error}', throttle_duration_sec=10.0)
            return
        self.hub.push_heartbeat(device, record, status.message)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            name = status.name.lstrip('/')
            if name in self.settings.devices:
                self.hub.push_diagnostics(name, status_values(status))

    def _device_services(self, device: str) -> Iterable[tuple[type, str]]:
        yield SetParameters, f'/{device}/set_parameters'
        yield GetParameterTypes, f'/{device}/get_parameter_types'
        yield GetParameters, f'/{device}/get_parameters'
        yield ListParameters, f'/{device}/list_parameters'
        yield Trigger, f'/{device}/start_recording'
        yield Trigger, f'/{device}/stop_recording'
        yield Trigger, f'/{device}/tare'
        yield Trigger, f'/{self.settings.manager_name}/{device}/restart'

    def _on_wrench(self, msg: WrenchStamped) -> None:
        f, t = msg.wrench.force, msg.wrench.torque
        self.hub.push_wrench((stamp_ns(msg.header), f.x, f.y, f.z, t.x, t.y, t.z))

    # Service calls, awaited on the event loop

    def start_spinning(self) -> None:
        """Spin in a background thread (called by the app's lifespan, on the loop)."""
        self._ros_thread = RosThread(self)
        self._ros_thread.start()

    def stop_spinning(self) -> None:
        if self._ros_thread is not None:
            self._ros_thread.stop()
            self._ros_thread = None
        self.image_sources.close()

    async def call(self, name: str, request: Any) -> Any:
        """Call a service of the API; raise ServiceUnavailable or ServiceTimeout."""
        client = self._service_clients[name]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.service_timeout_s
        while not client.service_is_ready():
            if loop.time() >= deadline:
                raise ServiceUnavailable(f'{name} is not available')
            await asyncio.sleep(0.05)
        answer: asyncio.Future = loop.create_future()

        def done(future: Future) -> None:
            loop.call_soon_threadsafe(_transfer, future, answer)

        future = client.call_async(request)
        future.add_done_callback(done)
        try:
            return await asyncio.wait_for(answer, max(0.0, deadline - loop.time()))
        except TimeoutError:
            client.remove_pending_request(future)
            raise ServiceTimeout(f'{name} did not answer within '
                                 f'{self.settings.service_timeout_s:g} s') from None

    async def trigger(self, name: str) -> tuple[bool, str]:
        response = await self.call(name, Trigger.Request())
        return response.success, response.message

    async def parameter_types(self, device: str, names: list[str]) -> list[int]:
        """Return the declared type of each name (PARAMETER_NOT_SET if undeclared)."""
        service = f'/{device}/get_parameter_types'
        response = await self.call(service, GetParameterTypes.Request(names=names))
        if len(response.types) == len(names):
            return list(response.types)
        # rclpy answers an empty list when any name is undeclared: ask one by one.
        types = []
        for name in names:
            single = await self.call(service, GetParameterTypes.Request(names=[name]))
            types.append(single.types[0] if single.types else ParameterType.PARAMETER_NOT_SET)
        return types

    async def set_device_parameters(self, device: str,
                                    values: dict[str, Any]) -> list[tuple[bool, str]]:
        response = await self.call(f'/{device}/set_parameters', set_parameters_request(values))
        return outcomes(response)

    async def parameter_names(self, device: str) -> list[str]:
        response = await self.call(f'/{device}/list_parameters', ListParameters.Request())
        return list(response.result.names)

    async def get_device_parameters(self, device: str, names: list[str]) -> list[tuple[int, Any]]:
        response = await self.call(f'/{device}/get_parameters', GetParameters.Request(names=names))
        if len(response.values) != len(names):
            raise ServiceUnavailable(f'/{device}/get_parameters answered '
                                     f'{len(response.values)} values for {len(names)} names')
        return [(value.type, parameter_value_to_python(value)) for value in response.values]


def _transfer(source: Future, target: asyncio.Future) -> None:
    if target.done():
        return
    exception = source.exception()
    if exception is not None:
        target.set_exception(exception)
    else:
        target.set_result(source.result())


class RosThread:
    """The executor spinning the bridge node in a background thread."""

    def __init__(self, node: BridgeNode) -> None:
        self.node = node
        self.executor = EventsExecutor(context=node.context)
        self.executor.add_node(node)
        self._thread = threading.Thread(target=self._spin, name='ros-executor', daemon=True)
        self._stop = threading.Event()

    def _spin(self) -> None:
        # Spin in slices and shut the executor down from this same thread: calling
        # EventsExecutor.shutdown() or wake() from another thread while spin() runs deadlocked.
        try:
            while not self._stop.is_set():
                self.executor.spin_once(timeout_sec=0.1)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        except Exception:  # noqa: BLE001 any exception in a callback ends the executor
            log.exception('the ROS executor thread died; stopping the bridge')
            self.node.ros_thread_failed = True
            os.kill(os.getpid(), signal.SIGTERM)
        finally:
            self.executor.shutdown()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)


def listen_socket(host: str, port: int, send_buffer_bytes: int = 0) -> socket.socket:
    """Bind the listening socket with TCP_NODELAY, which accepted sockets inherit on Linux.

    A fixed send buffer (SO_SNDBUF, also inherited) bounds what a stalled client can hold in
    the kernel; 0 keeps the kernel's autotuning (up to megabytes per socket).
    """
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if send_buffer_bytes > 0:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def server_config(app: FastAPI, settings: BridgeSettings) -> uvicorn.Config:
    return uvicorn.Config(
        app, lifespan='on', log_level='warning', access_log=False,
        # permessage-deflate makes binary frames crawl (FACTS.md): never negotiate it.
        ws_per_message_deflate=False,
        ws_max_size=settings.max_ws_message_bytes,
        timeout_graceful_shutdown=2)


def run(stop: StopRequest, args: list[str] | None = None) -> None:
    """Run the bridge until `stop` is requested (main.py installed it before these imports)."""
    logging.basicConfig(level=logging.INFO, format='[%(levelname)s] [%(name)s]: %(message)s')
    if stop.requested:  # a signal came during the imports: nothing to undo
        return
    profile = use_fastdds_profile(UDP_PROFILE)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        node = BridgeNode()
        node.get_logger().info(profile.describe())
        settings = node.settings
        sock = listen_socket(settings.host, settings.port, settings.send_buffer_bytes)
        host, port = sock.getsockname()[:2]
        shown = f'[{host}]' if ':' in host else host
        node.get_logger().info(f'listening on http://{shown}:{port}')
        stop.server = uvicorn.Server(server_config(create_app(settings, node.hub, node), settings))
        if not stop.requested:
            stop.server.run(sockets=[sock])
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    if node is not None and node.ros_thread_failed:
        sys.exit(1)
