"""Websockets: /ws/wrench (JSON batches), /ws/image (binary frames), /ws/events (JSON).

/ws/image takes `device` (a camera of the bridge's `cameras`; default the first) besides the
image options. /ws/events takes `log_level` (`?log_level=info` or a message
`{"log_level": "info"}`): the lowest level of the `log` events it gets (default warn).

A connection is accepted first and then closed with a code when refused, so clients see why:
1008 for a missing or wrong token or a foreign origin, 1013 when `max_clients` are connected,
4400 for a bad query parameter or message, 1003 for binary input, 1009 for an oversized one.
"""

import asyncio
from collections.abc import AsyncIterator, MutableMapping
import contextlib
import json
import logging
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from sensor_workers.bridge import imaging
from sensor_workers.bridge.hub import Client, Hub, ImageOptions
from sensor_workers.bridge.logs import DEFAULT_CLIENT_LEVEL, level_number
from sensor_workers.bridge.security import refusal

log = logging.getLogger(__name__)
router = APIRouter(tags=['websockets'])

POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
UNSUPPORTED_DATA = 1003
BAD_REQUEST = 4400


class Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def image_options(params: dict[str, Any], hub: Hub,
                  current: ImageOptions | None = None) -> ImageOptions:
    """Validate image options from query parameters or a client message; raise Refused."""
    settings = hub.settings
    options = current or ImageOptions(settings.image_max_fps, settings.image_max_width, 'jpeg')
    unknown = set(params) - {'max_fps', 'max_width', 'format', 'token'}
    if unknown:
        raise Refused(BAD_REQUEST, f'unknown parameter {sorted(unknown)[0][:32]!r}')
    max_fps, max_width, fmt = options.max_fps, options.max_width, options.format
    try:
        if 'max_fps' in params:
            max_fps = float(params['max_fps'])
            if not 0 < max_fps <= 1000:
                raise ValueError
        if 'max_width' in params:
            max_width = int(params['max_width'])
            if not 0 <= max_width <= 65535:
                raise ValueError
    except (TypeError, ValueError):
        raise Refused(BAD_REQUEST, 'max_fps must be in (0, 1000], max_width in [0, 65535]') \
            from None
    if 'format' in params:
        fmt = params['format']
        if fmt not in imaging.FORMATS:
            raise Refused(BAD_REQUEST, f'format must be one of {", ".join(imaging.FORMATS)}')
    max_fps = min(max_fps, settings.image_max_fps)
    if settings.image_max_width:
        max_width = min(max_width or settings.image_max_width, settings.image_max_width)
    return ImageOptions(max_fps, max_width, fmt)


def image_device(params: dict[str, Any], hub: Hub) -> str:
    """Pop and validate the camera an image client asks for (`device`); raise Refused."""
    cameras = hub.settings.cameras
    if not cameras:
        raise Refused(BAD_REQUEST, 'this bridge serves no camera')
    device = params.pop('device', cameras[0])
    if device not in cameras:
        raise Refused(BAD_REQUEST, f'device must be one of {", ".join(cameras)}'[:120])
    return device


def events_log_level(params: dict[str, Any], current: int) -> int:
    """Validate the options of an events client (only `log_level`); raise Refused."""
    unknown = set(params) - {'log_level'}
    if unknown:
        raise Refused(BAD_REQUEST, f'unknown parameter {sorted(unknown)[0][:32]!r}')
    if 'log_level' not in params:
        return current
    try:
        return level_number(params['log_level'])
    except (TypeError, ValueError) as error:
        raise Refused(BAD_REQUEST, str(error)) from None


def check_access(websocket: WebSocket, hub: Hub) -> None:
    settings = hub.settings
    reason = refusal(websocket.headers, websocket.query_params.get('token'),
                     settings.auth_token, settings.allowed_origins)
    if reason is None:
        return
    hub.metrics.rejected.labels(reason).inc()
    raise Refused(POLICY_VIOLATION,
                  'origin not allowed' if reason == 'origin' else 'missing or wrong token')


async def _serve(websocket: WebSocket, topic: str) -> None:
    hub: Hub = websocket.app.state.hub
    await websocket.accept()
    try:
        check_access(websocket, hub)
        options, log_level, device = None, DEFAULT_CLIENT_LEVEL, None
        params = dict(websocket.query_params)
        if topic == 'image':
            device = image_device(params, hub)
            options = image_options(params, hub)
        else:
            params.pop('token', None)
            if topic == 'events':
                log_level = events_log_level(params, DEFAULT_CLIENT_LEVEL)
            elif params:
                raise Refused(BAD_REQUEST, f'unknown parameter {sorted(params)[0][:32]!r}')
        client = hub.register(topic, peer_of(websocket), options, log_level, device)
        if client is None:
            raise Refused(TRY_AGAIN_LATER, f'{hub.settings.max_clients} clients connected')
    except Refused as refused:
        await websocket.close(refused.code, refused.reason)
        return
    sender = asyncio.create_task(hub.run_sender(client, websocket.send_text,
                                                websocket.send_bytes))
    try:
        code, reason = await _receive(websocket, client, hub, sender)
    finally:
        hub.unregister(client)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
    if code is not None:
        with contextlib.suppress(Exception):
            await websocket.close(code, reason)


async def client_messages(websocket: WebSocket,
                          sender: asyncio.Task) -> AsyncIterator[MutableMapping[str, Any]]:
    """Yield the client's messages until it leaves or `sender` ends (a send failed)."""
    receiving = asyncio.ensure_future(websocket.receive())
    try:
        while True:
            done, _ = await asyncio.wait({receiving, sender},
                                         return_when=asyncio.FIRST_COMPLETED)
            if sender in done:  # a send failed: the client is gone
                return
            message = receiving.result()
            if message['type'] == 'websocket.disconnect':
                return
            yield message
            receiving = asyncio.ensure_future(websocket.receive())
    except WebSocketDisconnect:
        return
    finally:
        receiving.cancel()


async def _receive(websocket: WebSocket, client: Client, hub: Hub,
                   sender: asyncio.Task) -> tuple[int | None, str]:
    """Read client messages until it leaves; return the close code to send (None: gone)."""
    async for message in client_messages(websocket, sender):
        if message.get('bytes') is not None:
            return UNSUPPORTED_DATA, 'binary messages are not accepted'
        try:
            _apply(json.loads(message.get('text') or ''), client, hub)
        except (ValueError, Refused) as error:
            reason = error.reason if isinstance(error, Refused) else 'malformed JSON'
            return BAD_REQUEST, reason
    return None, ''


def _apply(request: Any, client: Client, hub: Hub) -> None:
    """Client messages: JSON objects; image clients may change max_fps, max_width, format."""
    if not isinstance(request, dict):
        raise Refused(BAD_REQUEST, 'messages must be JSON objects')
    if client.topic == 'image':
        if 'token' in request:
            raise Refused(BAD_REQUEST, "unknown parameter 'token'")
        client.image = image_options(request, hub, client.image)
        if client.limiter is not None:
            client.limiter.max_fps = client.image.max_fps
    elif client.topic == 'events':
        client.log_level = events_log_level(request, client.log_level)
    elif request:
        raise Refused(BAD_REQUEST, f'/ws/{client.topic} accepts no options')


def peer_of(websocket: WebSocket) -> str:
    if websocket.client is None:
        return ''
    return f'{websocket.client.host}:{websocket.client.port}'


@router.websocket('/ws/wrench')
async def wrench(websocket: WebSocket) -> None:
    await _serve(websocket, 'wrench')


@router.websocket('/ws/image')
async def image(websocket: WebSocket) -> None:
    await _serve(websocket, 'image')


@router.websocket('/ws/events')
async def events(websocket: WebSocket) -> None:
    await _serve(websocket, 'events')
