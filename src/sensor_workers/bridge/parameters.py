"""Setting device parameters: one validated path for `POST /devices/{name}/params` and Foxglove.

The request is checked (shape, names, values), each value is converted to the type the node
declares, and only the valid ones are sent; the node's own refusals come back per parameter.
"""

from dataclasses import dataclass
from typing import Any, Literal

from sensor_workers.bridge.controller import Controller
from sensor_workers.bridge.request_checks import InvalidRequest, check_parameter_body, coerce


@dataclass(frozen=True)
class Outcome:
    """What became of one parameter: `applied`, `refused` (by the node) or `invalid` (by us)."""

    successful: bool
    status: Literal['applied', 'refused', 'invalid']
    reason: str


async def set_parameters(controller: Controller, device: str,
                         body: Any) -> dict[str, Outcome]:
    """Validate `body` and set its parameters on `device`; return the outcome per name in order.

    Raises InvalidRequest for a malformed body, ServiceUnavailable or ServiceTimeout.
    """
    values = check_parameter_body(body)
    names = list(values)
    types = await controller.parameter_types(device, names)
    results: dict[str, Outcome] = {}
    to_set: dict[str, Any] = {}
    for name, declared in zip(names, types, strict=True):
        try:
            to_set[name] = coerce(name, values[name], declared)
        except InvalidRequest as error:
            results[name] = Outcome(False, 'invalid', str(error))
    if to_set:
        answers = await controller.set_device_parameters(device, to_set)
        for name, (successful, reason) in zip(to_set, answers, strict=True):
            results[name] = Outcome(successful, 'applied' if successful else 'refused', reason)
    return {name: results[name] for name in names}
