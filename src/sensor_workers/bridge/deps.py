"""Dependencies of the routes: the hub, the controller, the settings, and the access check."""

from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sensor_workers.bridge.controller import Controller
from sensor_workers.bridge.hub import Hub
from sensor_workers.bridge.security import refusal
from sensor_workers.bridge.settings import BridgeSettings


def _hub(request: Request) -> Hub:
    return request.app.state.hub


def _controller(request: Request) -> Controller:
    return request.app.state.controller


def _settings(request: Request) -> BridgeSettings:
    return request.app.state.settings


HubDep = Annotated[Hub, Depends(_hub)]
ControllerDep = Annotated[Controller, Depends(_controller)]
SettingsDep = Annotated[BridgeSettings, Depends(_settings)]


# Declares the bearer scheme in the OpenAPI document; require_access reads the header itself,
# with the same parser as the websockets (which also take `?token=`).
BEARER = HTTPBearer(auto_error=False, description='The `auth_token` parameter of the bridge')
Documented = Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]


def require_access(request: Request, settings: SettingsDep, hub: HubDep,
                   _: Documented) -> None:
    """Origin allowlist (403) and bearer token (401) for everything but /health and files."""
    reason = refusal(request.headers, None, settings.auth_token, settings.allowed_origins)
    if reason is None:
        return
    hub.metrics.rejected.labels(reason).inc()
    if reason == 'origin':
        raise HTTPException(403, 'origin not allowed')
    raise HTTPException(401, 'missing or wrong bearer token',
                        headers={'WWW-Authenticate': 'Bearer'})
