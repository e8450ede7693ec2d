from fastapi import APIRouter

router = APIRouter(tags=['health'])


@router.get('/health')
async def health() -> dict[str, str]:
    """200 while the bridge runs; needs no token."""
    return {'status': 'ok'}
