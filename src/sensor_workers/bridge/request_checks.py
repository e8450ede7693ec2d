"""Control requests checked before anything reaches a worker, and the errors of the calls.

No rclpy and no FastAPI: parameter types are those of rcl_interfaces.
"""

import math
import re
import sys
from typing import Any

from rcl_interfaces.msg import ParameterType

# Whole-string patterns (fullmatch: `$` alone would let a trailing newline through).
DEVICE_NAME = re.compile(r'[A-Za-z][A-Za-z0-9_]{0,62}')
PARAMETER_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_.]{0,127}')
MAX_PARAMETERS = 32
MAX_STRING = 4096
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_DOUBLE_MAX = sys.float_info.max

# The JSON schema of a params body, for the OpenAPI document: what check_parameter_body accepts.
_SCALAR = {'anyOf': [{'type': 'boolean'}, {'type': 'number'},
                     {'type': 'string', 'maxLength': MAX_STRING}]}
PARAMETERS_SCHEMA = {
    'type': 'object', 'minProperties': 1, 'maxProperties': MAX_PARAMETERS,
    'propertyNames': {'pattern': f'^{PARAMETER_NAME.pattern}$'},
    'additionalProperties': {'anyOf': [_SCALAR, {'type': 'array', 'minItems': 1,
                                                 'items': _SCALAR}]},
    'examples': [{'frame_rate': 30, 'exposure_us': 5000.0}],
    'description': 'Parameter names to values; the whole body at most `max_body_bytes` (413).',
}

_TYPE_NAMES = {
    ParameterType.PARAMETER_BOOL: 'bool', ParameterType.PARAMETER_INTEGER: 'integer',
    ParameterType.PARAMETER_DOUBLE: 'double', ParameterType.PARAMETER_STRING: 'string',
    ParameterType.PARAMETER_BOOL_ARRAY: 'bool array',
    ParameterType.PARAMETER_INTEGER_ARRAY: 'integer array',
    ParameterType.PARAMETER_DOUBLE_ARRAY: 'double array',
    ParameterType.PARAMETER_STRING_ARRAY: 'string array',
}


class ServiceUnavailable(Exception):
    """No server for the service appeared within the timeout."""


class ServiceTimeout(Exception):
    """The server did not answer within the timeout."""


class InvalidRequest(ValueError):
    """The request is malformed; the message says what is wrong."""


def check_parameter_body(body: Any) -> dict[str, Any]:
    """Check the shape of a params request: a non-empty object of names to JSON values."""
    if not isinstance(body, dict) or not body:
        raise InvalidRequest('body must be a non-empty JSON object of parameter names to values')
    if len(body) > MAX_PARAMETERS:
        raise InvalidRequest(f'at most {MAX_PARAMETERS} parameters per request')
    for name, value in body.items():
        if not PARAMETER_NAME.fullmatch(name):
            raise InvalidRequest(f'invalid parameter name {name[:64]!r}')
        items = value if isinstance(value, list) else [value]
        if isinstance(value, list) and not value:
            raise InvalidRequest(f'{name}: empty arrays have no type; not supported')
        for item in items:
            if isinstance(item, (dict, list)) or item is None:
                raise InvalidRequest(f'{name}: values must be scalars or arrays of scalars')
            if isinstance(item, float) and not math.isfinite(item):
                raise InvalidRequest(f'{name}: not a finite number')
            if isinstance(item, str) and len(item) > MAX_STRING:
                raise InvalidRequest(f'{name}: string longer than {MAX_STRING}')
    return body


def coerce(name: str, value: Any, declared: int) -> Any:
    """Convert a JSON value to the parameter's declared type, or raise InvalidRequest.

    JSON has one number type: 30 for a double parameter is 30.0, 2.0 for an integer is 2.
    """
    if declared == ParameterType.PARAMETER_NOT_SET:
        raise InvalidRequest(f'{name} is not a declared parameter')
    type_name = _TYPE_NAMES.get(declared, f'type {declared}')
    is_array = declared in (ParameterType.PARAMETER_BOOL_ARRAY,
                            ParameterType.PARAMETER_INTEGER_ARRAY,
                            ParameterType.PARAMETER_DOUBLE_ARRAY,
                            ParameterType.PARAMETER_STRING_ARRAY)
    if is_array != isinstance(value, list):
        raise InvalidRequest(f'{name} expects a {type_name}')
    if is_array:
        scalar = declared - (ParameterType.PARAMETER_BOOL_ARRAY - ParameterType.PARAMETER_BOOL)
        return [_scalar(name, item, scalar, type_name) for item in value]
    return _scalar(name, value, declared, type_name)


def _scalar(name: str, value: Any, declared: int, type_name: str) -> Any:
    if declared == ParameterType.PARAMETER_BOOL and isinstance(value, bool):
        return value
    if declared == ParameterType.PARAMETER_STRING and isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # JSON integers are unbounded: 400 digits overflow a double, 2**63 an int64.
        if declared == ParameterType.PARAMETER_DOUBLE and abs(value) <= _DOUBLE_MAX:
            return float(value)
        if declared == ParameterType.PARAMETER_INTEGER and _is_int64(value):
            return int(value)
    raise InvalidRequest(f'{name} expects a {type_name}, got {value!r}'[:200])


def _is_int64(value: int | float) -> bool:
    if isinstance(value, float) and not value.is_integer():  # also NaN and infinities
        return False
    return _INT64_MIN <= value <= _INT64_MAX
