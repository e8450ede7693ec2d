"""The bridge app without ROS: a fake controller and a real uvicorn serving it in a thread."""

from collections.abc import Iterator
from contextlib import contextmanager
import socket
import threading
import time
from typing import Any

from rcl_interfaces.msg import ParameterType
import uvicorn

from sensor_workers.bridge.app import create_app
from sensor_workers.bridge.hub import Hub
from sensor_workers.bridge.request_checks import ServiceUnavailable
from sensor_workers.bridge.settings import BridgeSettings

_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
          float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}


def parameter_type(value: Any) -> int:
    if value is None:
        return ParameterType.PARAMETER_NOT_SET
    if isinstance(value, list):
        return _TYPES[type(value[0])] + ParameterType.PARAMETER_BOOL_ARRAY - 1
    return _TYPES[type(value)]


class FakeController:
    """What routes need from ROS, without ROS: parameters in dicts, scripted Trigger answers.

    A device missing from `parameters` and a service missing from `triggers` are "not
    available" (ServiceUnavailable), as when the worker is down.
    """

    def __init__(self, parameters: dict[str, dict[str, Any]],
                 triggers: dict[str, tuple[bool, str]],
                 read_only: tuple[str, ...] = ()) -> None:
        self.parameters = parameters
        self.triggers = triggers
        self.read_only = read_only
        self.calls: list[str] = []
        self.spinning = False

    def start_spinning(self) -> None:
        self.spinning = True

    def stop_spinning(self) -> None:
        self.spinning = False

    def _device(self, device: str) -> dict[str, Any]:
        if device not in self.parameters:
            raise ServiceUnavailable(f'/{device}/get_parameters is not available')
        return self.parameters[device]

    async def trigger(self, service: str) -> tuple[bool, str]:
        self.calls.append(service)
        if service not in self.triggers:
            raise ServiceUnavailable(f'{service} is not available')
        return self.triggers[service]

    async def parameter_types(self, device: str, names: list[str]) -> list[int]:
        values = self._device(device)
        return [parameter_type(values.get(name)) for name in names]

    async def set_device_parameters(self, device: str,
                                    values: dict[str, Any]) -> list[tuple[bool, str]]:
        stored = self._device(device)
        results = []
        for name, value in values.items():
            if name in self.read_only:
                results.append((False, f'{name} is read-only'))
            else:
                stored[name] = value
                results.append((True, ''))
        return results

    async def parameter_names(self, device: str) -> list[str]:
        return list(self._device(device))

    async def get_device_parameters(self, device: str, names: list[str]) -> list[tuple[int, Any]]:
        values = self._device(device)
        return [(parameter_type(values.get(name)), values.get(name)) for name in names]


@contextmanager
def serve(settings: BridgeSettings, controller: FakeController,
          hub: Hub | None = None) -> Iterator[tuple[str, Hub]]:
    """Serve create_app(settings, hub, controller) on a free port; yield its URL and hub."""
    hub = hub or Hub(settings)
    app = create_app(settings, hub, controller)
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    sock.listen(128)
    server = uvicorn.Server(uvicorn.Config(
        app, lifespan='on', log_level='warning', access_log=False,
        ws_per_message_deflate=False, ws_max_size=settings.max_ws_message_bytes,
        timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={'sockets': [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, 'uvicorn did not start'
        time.sleep(0.01)
    try:
        yield f'http://127.0.0.1:{sock.getsockname()[1]}', hub
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
