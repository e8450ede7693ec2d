from fastapi import APIRouter

from sensor_workers.bridge.schemas import Health

router = APIRouter(tags=['health'])


@router.get('/health')
async def health() -> Health:
    """200 while the bridge runs; needs no token."""
    return Health(status='ok')
