"""Control: parameters, recording, tare and restart, mapped onto ROS services with timeouts."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from sensor_workers.bridge.control import (
    DEVICE_NAME,
    InvalidRequest,
    ServiceTimeout,
    ServiceUnavailable,
    check_parameter_body,
    coerce,
)
from sensor_workers.bridge.deps import NodeDep

router = APIRouter(prefix='/devices', tags=['control'])


class RecordingRequest(BaseModel):
    model_config = ConfigDict(extra='forbid')
    action: Literal['start', 'stop']


def _device(node, name: str) -> str:
    if not DEVICE_NAME.match(name) or name not in node.settings.devices:
        known = ', '.join(node.settings.devices)
        raise HTTPException(404, f'unknown device {name[:64]!r}; known: {known}')
    return name


async def _call(node, coroutine) -> Any:
    try:
        return await coroutine
    except ServiceUnavailable as error:
        raise HTTPException(503, str(error)) from None
    except ServiceTimeout as error:
        raise HTTPException(504, str(error)) from None


async def _trigger(node, service: str) -> JSONResponse:
    success, message = await _call(node, node.trigger(service))
    body = {'service': service, 'success': success, 'message': message}
    if success:
        return JSONResponse(body)
    return JSONResponse({**body, 'detail': message or f'{service} refused'}, status_code=409)


@router.post('/{name}/params')
async def set_params(name: str, node: NodeDep, body: Annotated[Any, Body()]) -> JSONResponse:
    """Set parameters of /{name}; the answer says per parameter: applied or refused (why)."""
    device = _device(node, name)
    try:
        values = check_parameter_body(body)
    except InvalidRequest as error:
        raise HTTPException(422, str(error)) from None
    names = list(values)
    types = await _call(node, node.parameter_types(device, names))
    results: dict[str, dict[str, Any]] = {}
    to_set: dict[str, Any] = {}
    for param, declared in zip(names, types, strict=True):
        try:
            to_set[param] = coerce(param, values[param], declared)
        except InvalidRequest as error:
            results[param] = {'successful': False, 'status': 'invalid', 'reason': str(error)}
    if to_set:
        answers = await _call(node, node.set_parameters(device, to_set))
        for param, (successful, reason) in zip(to_set, answers, strict=True):
            results[param] = {'successful': successful,
                              'status': 'applied' if successful else 'refused',
                              'reason': reason}
    ordered = {param: results[param] for param in names}
    failed = {p: r for p, r in ordered.items() if not r['successful']}
    body_out: dict[str, Any] = {'device': device, 'results': ordered,
                                'applied': [p for p in names if p not in failed]}
    if not failed:
        return JSONResponse(body_out)
    body_out['detail'] = '; '.join(f'{p}: {r["reason"]}' for p, r in failed.items())
    refused_by_node = any(r['status'] == 'refused' for r in failed.values())
    return JSONResponse(body_out, status_code=409 if refused_by_node else 422)


@router.post('/{name}/recording')
async def recording(name: str, request: RecordingRequest, node: NodeDep) -> JSONResponse:
    """Start or stop recording on a camera (`{"action": "start"}` or `"stop"`)."""
    device = _device(node, name)
    return await _trigger(node, f'/{device}/{request.action}_recording')


@router.post('/{name}/tare')
async def tare(name: str, node: NodeDep) -> JSONResponse:
    """Tare a force/torque sensor."""
    return await _trigger(node, f'/{_device(node, name)}/tare')


@router.post('/{name}/restart')
async def restart(name: str, node: NodeDep) -> JSONResponse:
    """Ask the manager to restart the device's worker."""
    device = _device(node, name)
    return await _trigger(node, f'/{node.settings.manager_name}/{device}/restart')
