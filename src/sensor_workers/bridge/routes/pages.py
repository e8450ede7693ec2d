"""The pages (dashboard, API docs) and the OpenAPI document they read.

The pages are public files with no secrets, like everything under /static: a browser must load
them to ask for the token. The OpenAPI document is behind the token and origin rules like every
other route but /health: /docs asks for the token (shared with the dashboard, kept in
sessionStorage) and fetches it with an `Authorization: Bearer` header. /docs renders it with
the bridge's own script (static/docs.js): no CDN, so it works on a robot without internet.
"""

from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse

from sensor_workers.bridge.deps import require_access

STATIC_DIR = Path(__file__).resolve().parent.parent / 'static'

router = APIRouter(include_in_schema=False)


@router.get('/')
async def dashboard() -> FileResponse:
    return FileResponse(STATIC_DIR / 'index.html')


@router.get('/docs')
async def docs() -> FileResponse:
    return FileResponse(STATIC_DIR / 'docs.html')


@router.get('/openapi.json', dependencies=[Depends(require_access)])
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())
