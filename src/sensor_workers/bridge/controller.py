"""What the web side needs from ROS, as an interface: routes depend on this, never on the node.

`BridgeNode` implements it with rclpy service calls; route tests pass a fake. Every coroutine
raises `ServiceUnavailable` when the service is not there in time and `ServiceTimeout` when it
does not answer in time; neither ever blocks the event loop.
"""

from typing import Any, Protocol


class Controller(Protocol):
    def start_spinning(self) -> None:
        """Start taking ROS messages (called on the event loop by the app's lifespan)."""

    def stop_spinning(self) -> None:
        """Stop taking ROS messages (may block; the lifespan runs it in a thread)."""

    async def trigger(self, service: str) -> tuple[bool, str]:
        """Call a std_srvs/Trigger service; return its (success, message)."""

    async def parameter_types(self, device: str, names: list[str]) -> list[int]:
        """Return the declared rcl_interfaces ParameterType of each name (NOT_SET: undeclared)."""

    async def set_device_parameters(self, device: str,
                                    values: dict[str, Any]) -> list[tuple[bool, str]]:
        """Set already validated values; return (successful, reason) per name, in order."""

    async def parameter_names(self, device: str) -> list[str]:
        """Return the names of the parameters the device's node declares."""

    async def get_device_parameters(self, device: str, names: list[str]) -> list[tuple[int, Any]]:
        """Return (ParameterType, Python value) per name, in order (NOT_SET: undeclared)."""
