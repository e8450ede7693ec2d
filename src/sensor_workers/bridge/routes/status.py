from typing import Any

from fastapi import APIRouter, Response

from sensor_workers.bridge.deps import HubDep

router = APIRouter(tags=['status'])

PROMETHEUS_TEXT = 'text/plain; version=0.0.4; charset=utf-8'


@router.get('/status')
async def status(hub: HubDep) -> dict[str, Any]:
    """Device states (manager and heartbeats) and every client's queue and drops."""
    return hub.status()


@router.get('/metrics')
async def metrics(hub: HubDep) -> Response:
    return Response(hub.metrics.render(), media_type=PROMETHEUS_TEXT)
