"""create_app(): the FastAPI application; its lifespan runs the hub and the ROS executor."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from sensor_workers.bridge.routes import api_router
from sensor_workers.bridge.security import BodySizeLimit

if TYPE_CHECKING:
    from sensor_workers.bridge.node import BridgeNode

STATIC_DIR = Path(__file__).resolve().parent / 'static'


def create_app(node: 'BridgeNode') -> FastAPI:
    """Build the app around a bridge node (not yet spinning); the lifespan spins it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await node.hub.start()
        node.start_spinning()
        try:
            yield
        finally:
            await asyncio.get_running_loop().run_in_executor(None, node.stop_spinning)
            await node.hub.stop()

    app = FastAPI(title='sensor_workers bridge', lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)
    app.state.node = node
    app.state.hub = node.hub
    app.state.settings = node.settings
    app.add_middleware(BodySizeLimit, max_bytes=node.settings.max_body_bytes)
    app.include_router(api_router)
    # The dashboard: public files (no secrets), so a browser can load the page that asks for
    # the token. Mounted last so the API routes take precedence.
    app.mount('/static', StaticFiles(directory=STATIC_DIR), name='static')
    app.mount('/', StaticFiles(directory=STATIC_DIR, html=True), name='dashboard')
    return app
