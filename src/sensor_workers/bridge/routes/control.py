"""Control: parameters, recording, tare and restart, mapped onto ROS services with timeouts."""

from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, HTTPException, Path
from fastapi.responses import JSONResponse

from sensor_workers.bridge import parameters
from sensor_workers.bridge.controller import Controller
from sensor_workers.bridge.deps import ControllerDep, SettingsDep
from sensor_workers.bridge.request_checks import (
    DEVICE_NAME,
    PARAMETERS_SCHEMA,
    InvalidRequest,
    ServiceTimeout,
    ServiceUnavailable,
)
from sensor_workers.bridge.schemas import (
    BODY,
    SERVICE,
    ParameterResult,
    ParametersAnswer,
    ParametersRefused,
    RecordingRequest,
    TriggerAnswer,
    TriggerRefused,
    Unprocessable,
    errors,
)
from sensor_workers.bridge.settings import BridgeSettings

router = APIRouter(prefix='/devices', tags=['control'])

DeviceName = Annotated[str, Path(description='A device of the `devices` parameter (404 if not)',
                                 examples=['ft', 'camera'])]
TRIGGER_ERRORS = errors(*SERVICE, 409, 422, *BODY)
T = TypeVar('T')


def _device(settings: BridgeSettings, name: str) -> str:
    if not DEVICE_NAME.fullmatch(name) or name not in settings.devices:
        known = ', '.join(settings.devices)
        raise HTTPException(404, f'unknown device {name[:64]!r}; known: {known}')
    return name


async def _call(coroutine: Awaitable[T]) -> T:
    try:
        return await coroutine
    except ServiceUnavailable as error:
        raise HTTPException(503, str(error)) from None
    except ServiceTimeout as error:
        raise HTTPException(504, str(error)) from None


async def _trigger(controller: Controller, service: str) -> JSONResponse:
    success, message = await _call(controller.trigger(service))
    if success:
        return JSONResponse(TriggerAnswer(service=service, success=True,
                                          message=message).model_dump())
    refused = TriggerRefused(service=service, success=False, message=message,
                             detail=message or f'{service} refused')
    return JSONResponse(refused.model_dump(), status_code=409)


@router.post('/{name}/params', response_model=ParametersAnswer, responses=errors(
    *SERVICE, 409, 422, *BODY,
    bodies={409: ParametersRefused, 422: ParametersRefused | Unprocessable}))
async def set_params(name: DeviceName, controller: ControllerDep, settings: SettingsDep,
                     body: Annotated[Any, Body(json_schema_extra=PARAMETERS_SCHEMA)]
                     ) -> JSONResponse:
    """Set parameters of /{name}; the answer says per parameter: applied or refused (why).

    JSON numbers become the declared type (30 -> 30.0 for a double). 200 if all were applied,
    409 if the node refused any, 422 if only the bridge did (undeclared, wrong type).
    """
    device = _device(settings, name)
    try:
        outcomes = await _call(parameters.set_parameters(controller, device, body))
    except InvalidRequest as error:
        raise HTTPException(422, str(error)) from None
    names = list(outcomes)
    ordered = {param: ParameterResult(successful=o.successful, status=o.status, reason=o.reason)
               for param, o in outcomes.items()}
    failed = {p: r for p, r in ordered.items() if not r.successful}
    applied = [p for p in names if p not in failed]
    if not failed:
        return JSONResponse(ParametersAnswer(device=device, results=ordered,
                                             applied=applied).model_dump())
    refused = ParametersRefused(device=device, results=ordered, applied=applied,
                                detail='; '.join(f'{p}: {r.reason}' for p, r in failed.items()))
    refused_by_node = any(r.status == 'refused' for r in failed.values())
    return JSONResponse(refused.model_dump(), status_code=409 if refused_by_node else 422)


@router.post('/{name}/recording', response_model=TriggerAnswer, responses=TRIGGER_ERRORS)
async def recording(name: DeviceName, request: RecordingRequest, controller: ControllerDep,
                    settings: SettingsDep) -> JSONResponse:
    """Start or stop recording on a camera (`{"action": "start"}` or `"stop"`)."""
    device = _device(settings, name)
    return await _trigger(controller, f'/{device}/{request.action}_recording')


@router.post('/{name}/tare', response_model=TriggerAnswer, responses=TRIGGER_ERRORS)
async def tare(name: DeviceName, controller: ControllerDep,
               settings: SettingsDep) -> JSONResponse:
    """Tare a force/torque sensor."""
    return await _trigger(controller, f'/{_device(settings, name)}/tare')


@router.post('/{name}/restart', response_model=TriggerAnswer, responses=TRIGGER_ERRORS)
async def restart(name: DeviceName, controller: ControllerDep,
                  settings: SettingsDep) -> JSONResponse:
    """Ask the manager to restart the device's worker."""
    device = _device(settings, name)
    return await _trigger(controller, f'/{settings.manager_name}/{device}/restart')
