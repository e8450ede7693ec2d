"""What the launch files need installed, checked before they start anything.

launch_ros looks a node's executable up only when it starts that node. The launch files start
the manager and the bridge first, so a missing optional package (`tf2_ros`, `rviz2`) used to
fail the launch with the cell already running. They now check every executable they are about
to start and start nothing when one is missing. No launch import here (unit-tested where ROS 2
launch is not installed).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ament_index_python.packages import PackageNotFoundError, get_package_prefix


@dataclass(frozen=True)
class Executable:
    """An executable a launch file starts, and the launch argument that turns it off."""

    package: str
    name: str
    switch: str | None = None  # None: the launch cannot do without it

    def problem(self) -> str | None:
        """Say what is missing, where launch_ros would look for it; None when it is there."""
        try:
            prefix = get_package_prefix(self.package)
        except PackageNotFoundError:
            missing = f"package '{self.package}' not found"
        else:
            # launch_ros's ExecutableInPackage: <prefix>/lib/<package>/<executable>.
            if (Path(prefix) / 'lib' / self.package / self.name).is_file():
                return None
            missing = (f"executable '{self.name}' of package '{self.package}' not found in "
                       f'{Path(prefix) / "lib" / self.package}')
        if self.switch is None:
            return f'{missing}: install {self.package} (colcon build, or pip install)'
        return f'{missing}: install it, or launch with {self.switch}:=false'


def check_installed(executables: Iterable[Executable]) -> None:
    """Raise one error naming every missing executable, before anything is started."""
    problems = [p for e in executables if (p := e.problem()) is not None]
    if problems:
        raise RuntimeError('not starting the cell: ' + '; '.join(problems))
