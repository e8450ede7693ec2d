"""`WS /foxglove`: the Foxglove WebSocket protocol, so Lichtblick and Foxglove open the cell.

Same token and origin rules as every websocket (refused: accepted, then closed with 1008); a
client must offer `foxglove.websocket.v1` or `foxglove.sdk.v1` (else closed with 4400). Bad
messages get an error status and the connection stays; only a message over
`max_ws_message_bytes` closes it (1009, by uvicorn).
"""

import asyncio
from collections.abc import Callable
import contextlib
import time

from fastapi import APIRouter, WebSocket

from sensor_workers.bridge.controller import Controller
from sensor_workers.bridge.foxglove.connection import Connection
from sensor_workers.bridge.foxglove.protocol import SUBPROTOCOLS
from sensor_workers.bridge.foxglove.services import trigger_services
from sensor_workers.bridge.foxglove.session import Session, Subscription
from sensor_workers.bridge.hub import Client, Hub, device_of
from sensor_workers.bridge.routes.ws import (
    BAD_REQUEST,
    TRY_AGAIN_LATER,
    Refused,
    check_access,
    client_messages,
    peer_of,
)

router = APIRouter(tags=['websockets'])
SERVER_NAME = 'sensor_workers bridge'


@router.websocket('/foxglove')
async def foxglove(websocket: WebSocket) -> None:
    hub: Hub = websocket.app.state.hub
    offered = websocket.scope.get('subprotocols') or []
    chosen = next((name for name in offered if name in SUBPROTOCOLS), None)
    # Accept with the client's protocol even to refuse it: a browser that offered one and got
    # none fails the handshake and never sees the close reason.
    await websocket.accept(subprotocol=chosen)
    try:
        check_access(websocket, hub)
        if chosen is None:
            raise Refused(BAD_REQUEST, f'offer a subprotocol: {" or ".join(SUBPROTOCOLS)}')
        unknown = set(websocket.query_params) - {'token'}
        if unknown:
            raise Refused(BAD_REQUEST, f'unknown parameter {sorted(unknown)[0][:32]!r}')
        client = hub.register('foxglove', peer_of(websocket), subprotocol=chosen)
        if client is None:
            raise Refused(TRY_AGAIN_LATER, f'{hub.settings.max_clients} clients connected')
    except Refused as refused:
        await websocket.close(refused.code, refused.reason)
        return
    session = client.session
    assert session is not None  # the hub gives every Foxglove client its session
    connection = _connection(session, hub, websocket.app.state.controller)
    sender = asyncio.create_task(session.run_sender(
        websocket.send_text, websocket.send_bytes, _counter(client, hub)))
    try:
        await _receive(websocket, connection, sender)
    finally:
        connection.close()
        hub.unregister(client)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender


def _connection(session: Session, hub: Hub, controller: Controller) -> Connection:
    settings = hub.settings
    ft_devices = [device_of(settings.wrench_topic, settings.devices)]
    services = trigger_services(settings.devices, settings.cameras,
                                [d for d in ft_devices if d in settings.devices],
                                settings.manager_name)
    connection = Connection(session, hub.foxglove, controller, settings.devices, services)
    connection.greet(SERVER_NAME, hub.foxglove.metadata)
    return connection


def _counter(client: Client, hub: Hub) -> Callable[[Subscription | None, int, int], None]:
    """Count what the sender sent: per client, and per topic in /metrics."""
    fanout = hub.foxglove

    def sent(subscription: Subscription | None, size: int, stamp_ns: int) -> None:
        metrics = fanout.channel_metrics[subscription.channel.id] if subscription \
            else fanout.control_metrics
        client.sent += 1
        client.sent_bytes += size
        metrics.sent.inc()
        metrics.sent_bytes.inc(size)
        if stamp_ns > 0:
            metrics.latency.observe(max(0.0, (time.time_ns() - stamp_ns) / 1e9))

    return sent


async def _receive(websocket: WebSocket, connection: Connection, sender: asyncio.Task) -> None:
    """Read client messages until it leaves or a send fails."""
    async for message in client_messages(websocket, sender):
        if message.get('bytes') is not None:
            connection.on_binary(message['bytes'])
        else:
            connection.on_text(message.get('text') or '')
