"""All routes of the bridge, one router per area."""

from fastapi import APIRouter, Depends

from sensor_workers.bridge.deps import require_access
from sensor_workers.bridge.routes import control, foxglove, health, status, ws
from sensor_workers.bridge.schemas import ACCESS, errors

api_router = APIRouter()
api_router.include_router(health.router)
for _router in (status.router, control.router):
    api_router.include_router(_router, dependencies=[Depends(require_access)],
                              responses=errors(*ACCESS))
api_router.include_router(ws.router)
api_router.include_router(foxglove.router)
