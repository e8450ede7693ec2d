"""All routes of the bridge, one router per area."""

from fastapi import APIRouter, Depends

from sensor_workers.bridge.deps import require_access
from sensor_workers.bridge.routes import control, health, status, ws

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(status.router, dependencies=[Depends(require_access)])
api_router.include_router(control.router, dependencies=[Depends(require_access)])
api_router.include_router(ws.router)
