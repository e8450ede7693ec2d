"""create_app(): the FastAPI application; its lifespan runs the hub and the ROS executor."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from sensor_workers.bridge.controller import Controller
from sensor_workers.bridge.hub import Hub
from sensor_workers.bridge.routes import api_router, pages
from sensor_workers.bridge.schemas import name_the_devices
from sensor_workers.bridge.security import BodySizeLimit
from sensor_workers.bridge.settings import BridgeSettings

DESCRIPTION = """\
The HTTP side of the sensor_workers bridge; docs/bridge.md has the whole interface.

With `auth_token` set, every route but `/health` needs `Authorization: Bearer <token>`, and
requests with a foreign `Origin` get 403. A wrong method on a path gets 405 with `Allow`.

Websockets (OpenAPI cannot describe them; same token and origin rules, `?token=` allowed):
`/ws/wrench` (JSON batches), `/ws/image` (binary frames; query `max_fps`, `max_width`,
`format`), `/ws/events` (JSON; query `log_level`), `/foxglove` (the Foxglove WebSocket
protocol, subprotocol `foxglove.websocket.v1` or `foxglove.sdk.v1`). Close codes: 1003 binary
message sent, 1008 token or origin, 1009 message over `max_ws_message_bytes`, 1013
`max_clients` reached, 4400 bad query parameter or message (`/foxglove`: no Foxglove
subprotocol; its bad messages get an error status instead).
"""


def create_app(settings: BridgeSettings, hub: Hub, controller: Controller) -> FastAPI:
    """Build the app; its lifespan starts the hub, then the controller (the ROS side)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await hub.start()
        controller.start_spinning()
        try:
            yield
        finally:
            await asyncio.get_running_loop().run_in_executor(None, controller.stop_spinning)
            await hub.stop()

    # FastAPI's own /docs loads Swagger UI from a CDN and its /openapi.json is public: both off,
    # routes/pages.py serves them instead.
    app = FastAPI(title='sensor_workers bridge', version=metadata.version('sensor_workers'),
                  description=DESCRIPTION, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.controller = controller
    app.state.hub = hub
    app.state.settings = settings
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.include_router(api_router)
    app.include_router(pages.router)
    generated = app.openapi  # FastAPI's, cached after its first call
    # FastAPI's documented way to change the schema: replace the method on the instance.
    app.openapi = lambda: name_the_devices(generated(), settings.devices)  # type: ignore[method-assign]
    # Files only under /static: a catch-all mount at / would answer a wrong method on an API
    # path with its own 404/405 (no `Allow`) instead of the route's 405.
    app.mount('/static', StaticFiles(directory=pages.STATIC_DIR), name='static')
    return app
