from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from sensor_workers.bridge.deps import HubDep
from sensor_workers.bridge.schemas import PROMETHEUS_TEXT, Status

router = APIRouter(tags=['status'])


@router.get('/status', response_model=Status)
async def status(hub: HubDep) -> Any:
    """Device states (manager and heartbeats) and every client's queue and drops.

    Documented by `Status` but not re-validated on the way out: a surprising value from a
    worker must not turn the page operators look at during an incident into a 500.
    """
    return JSONResponse(hub.status())


# response_class=Response: a media type of its own would also be given to the JSON errors.
@router.get('/metrics', response_class=Response, responses={200: {
    'description': 'Prometheus text exposition format 0.0.4 (docs/bridge.md lists the metrics)',
    'content': {PROMETHEUS_TEXT: {'schema': {'type': 'string'}}}}})
async def metrics(hub: HubDep) -> Response:
    return Response(hub.metrics.render(), media_type=PROMETHEUS_TEXT)
