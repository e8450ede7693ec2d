"""Parameter declaration with descriptors, so every parameter documents and range-checks itself."""

from collections.abc import Sequence
from typing import Any

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    Parameter,
    ParameterDescriptor,
    SetParametersResult,
)
from rcl_interfaces.srv import SetParameters
from rclpy.node import Node
from rclpy.parameter import Parameter as RclpyParameter


def declare(
    node: Node,
    name: str,
    default: Any,
    description: str,
    *,
    read_only: bool = False,
    int_range: tuple[int, int] | None = None,
    float_range: tuple[float, float] | None = None,
    choices: Sequence[str] | None = None,
) -> Any:
    """Declare a parameter with a descriptor and return its value.

    rclpy enforces `int_range`/`float_range` on every later set; `choices` is recorded in the
    descriptor's `additional_constraints` and must be checked with `check_choice`.
    """
    descriptor = ParameterDescriptor(description=description, read_only=read_only)
    if int_range is not None:
        descriptor.integer_range = [IntegerRange(from_value=int_range[0], to_value=int_range[1])]
    if float_range is not None:
        descriptor.floating_point_range = [
            FloatingPointRange(from_value=float(float_range[0]), to_value=float(float_range[1]))
        ]
    if choices is not None:
        descriptor.additional_constraints = 'one of: ' + ', '.join(choices)
    return node.declare_parameter(name, default, descriptor).value


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str | None:
    """Return a refusal reason when `value` is not one of `choices`, else None."""
    if value in choices:
        return None
    return f'{name} must be one of {", ".join(choices)} (got {value!r})'


def accepted() -> SetParametersResult:
    return SetParametersResult(successful=True)


def refused(reason: str) -> SetParametersResult:
    return SetParametersResult(successful=False, reason=reason)


def set_parameters_request(values: dict[str, Any]) -> SetParameters.Request:
    """Build the request `ros2 param set` sends, one entry per name, typed from the value."""
    return SetParameters.Request(parameters=[
        Parameter(name=name, value=RclpyParameter(name, value=value).get_parameter_value())
        for name, value in values.items()])


def outcomes(response: SetParameters.Response) -> list[tuple[bool, str]]:
    """Return (successful, reason) per parameter of a SetParameters response."""
    return [(result.successful, result.reason) for result in response.results]
