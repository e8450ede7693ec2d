"""One Foxglove connection's requests: subscriptions, parameters and service calls.

Answers and errors go into the session's control queue; nothing here writes to the socket.
Parameter requests and service calls wait on ROS, so each runs as a task of its own (at most
`MAX_PENDING` at once per client) while the connection keeps reading.
"""

import asyncio
from collections import defaultdict
from collections.abc import Callable, Coroutine
import logging
from typing import Any

from sensor_workers.bridge import parameters
from sensor_workers.bridge.controller import Controller
from sensor_workers.bridge.foxglove import protocol
from sensor_workers.bridge.foxglove.fanout import FoxgloveFanout
from sensor_workers.bridge.foxglove.parameters import (
    from_foxglove,
    full_name,
    split_name,
    to_foxglove,
)
from sensor_workers.bridge.foxglove.protocol import Level, ProtocolError, ServiceCall
from sensor_workers.bridge.foxglove.services import Service, trigger_response
from sensor_workers.bridge.foxglove.session import Session
from sensor_workers.bridge.request_checks import InvalidRequest, ServiceTimeout, ServiceUnavailable

log = logging.getLogger(__name__)
MAX_PENDING = 8
CAPABILITIES = ['parameters', 'services']


class Connection:
    def __init__(self, session: Session, fanout: FoxgloveFanout, controller: Controller,
                 devices: tuple[str, ...], services: list[Service]) -> None:
        self.session = session
        self.fanout = fanout
        self.controller = controller
        self.devices = devices
        self.services = {service.id: service for service in services}
        self._pending: set[asyncio.Task] = set()

    def greet(self, name: str, metadata: dict[str, str]) -> None:
        """Queue serverInfo, the channels and the services: what a client reads first."""
        self.session.put_control(protocol.server_info(
            name, CAPABILITIES, ['cdr'], metadata, self.fanout.session_id))
        self.session.put_control(protocol.advertise(
            [channel.advertisement() for channel in self.fanout.channels.values()]))
        self.session.put_control(protocol.advertise_services(
            [service.advertisement() for service in self.services.values()]))

    def status(self, level: Level, message: str) -> None:
        self.session.put_control(protocol.status(level, message[:protocol.MAX_TEXT * 2]))

    def on_text(self, text: str) -> None:
        """Handle a JSON message; errors become status messages."""
        try:
            message = protocol.parse_text(text)
            getattr(self, f'_op_{message["op"]}')(message)
        except ProtocolError as error:
            self.status(Level.ERROR, str(error))

    def on_binary(self, data: bytes) -> None:
        try:
            call = protocol.parse_binary(data)
        except ProtocolError as error:
            self.status(Level.ERROR, str(error))
            return
        service = self.services.get(call.service_id)
        if service is None:
            self._fail(call, f'unknown service id {call.service_id}')
        elif call.encoding != 'cdr':
            self._fail(call, f'unsupported encoding {call.encoding[:32]!r}; use cdr')
        else:
            self._spawn(self._call(service, call), lambda reason: self._fail(call, reason))

    def close(self) -> None:
        for task in self._pending:
            task.cancel()

    # Ops

    def _op_subscribe(self, message: dict[str, Any]) -> None:
        errors = []
        for item in protocol.id_list(message, 'subscriptions'):
            try:
                if not isinstance(item, dict):
                    raise ProtocolError('subscribe: subscriptions are objects')
                self.fanout.subscribe(self.session,
                                      protocol.uint32(item.get('id'), 'subscription id'),
                                      protocol.uint32(item.get('channelId'), 'channelId'))
            except ProtocolError as error:
                errors.append(str(error))
        if errors:
            raise ProtocolError('subscribe: ' + '; '.join(errors))

    def _op_unsubscribe(self, message: dict[str, Any]) -> None:
        errors = []
        for subscription_id in protocol.id_list(message, 'subscriptionIds'):
            try:
                self.fanout.unsubscribe(self.session,
                                        protocol.uint32(subscription_id, 'subscription id'))
            except ProtocolError as error:
                errors.append(str(error))
        if errors:
            raise ProtocolError('unsubscribe: ' + '; '.join(errors))

    def _op_getParameters(self, message: dict[str, Any]) -> None:  # noqa: N802 the op's name
        names = protocol.id_list(message, 'parameterNames')
        wanted: dict[str, list[str]] = defaultdict(list)
        for name in names:
            device, parameter = split_name(name, self.devices)
            wanted[device].append(parameter)
        request_id = _request_id(message)
        self._spawn(self._get(wanted if names else None, request_id),
                    lambda reason: self.status(Level.ERROR, f'getParameters: {reason}'))

    def _op_setParameters(self, message: dict[str, Any]) -> None:  # noqa: N802 the op's name
        values: dict[str, dict[str, Any]] = defaultdict(dict)
        for item in protocol.id_list(message, 'parameters'):
            name, value = from_foxglove(item)
            device, parameter = split_name(name, self.devices)
            values[device][parameter] = value
        request_id = _request_id(message)
        self._spawn(self._set(values, request_id),
                    lambda reason: self.status(Level.ERROR, f'setParameters: {reason}'))

    # Tasks waiting on ROS

    def _spawn(self, coroutine: Coroutine[Any, Any, None], report: Callable[[str], None]) -> None:
        if len(self._pending) >= MAX_PENDING:
            coroutine.close()
            report(f'more than {MAX_PENDING} requests in flight')
            return
        task = asyncio.ensure_future(self._guarded(coroutine, report))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    @staticmethod
    async def _guarded(coroutine: Coroutine[Any, Any, None],
                       report: Callable[[str], None]) -> None:
        try:
            await coroutine
        except (ServiceUnavailable, ServiceTimeout, InvalidRequest, ProtocolError) as error:
            report(str(error))
        except Exception:  # noqa: BLE001 a bug here must not pass silently, nor end the bridge
            log.exception('a Foxglove request failed')
            report('internal error (logged by the bridge)')

    async def _get(self, wanted: dict[str, list[str]] | None, request_id: str | None) -> None:
        if wanted is None:  # no names: every parameter of every device that answers
            wanted = {}
            for device in self.devices:
                try:
                    wanted[device] = await self.controller.parameter_names(device)
                except (ServiceUnavailable, ServiceTimeout) as error:
                    self.status(Level.WARNING, f'getParameters: {error}')
        found = []
        for device, names in wanted.items():
            if not names:
                continue
            values = await self.controller.get_device_parameters(device, names)
            for name, (declared, value) in zip(names, values, strict=True):
                parameter = to_foxglove(full_name(device, name), declared, value)
                if parameter is not None:
                    found.append(parameter)
        self.session.put_control(protocol.parameter_values(found, request_id))

    async def _set(self, values: dict[str, dict[str, Any]], request_id: str | None) -> None:
        failed = []
        for device, body in values.items():
            outcomes = await parameters.set_parameters(self.controller, device, body)
            failed += [f'{full_name(device, name)}: {outcome.reason}'
                       for name, outcome in outcomes.items() if not outcome.successful]
        if failed:
            self.status(Level.ERROR, 'setParameters: ' + '; '.join(failed))
        if request_id is not None:
            await self._get({device: list(body) for device, body in values.items()}, request_id)

    async def _call(self, service: Service, call: ServiceCall) -> None:
        success, message = await self.controller.trigger(service.name)
        self.session.put_control(protocol.service_call_response(
            call, trigger_response(success, message)))

    def _fail(self, call: ServiceCall, reason: str) -> None:
        self.session.put_control(protocol.service_call_failure(call.service_id, call.call_id,
                                                               reason))


def _request_id(message: dict[str, Any]) -> str | None:
    request_id = message.get('id')
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError(f'{message["op"]}: id must be a string')
    return request_id
