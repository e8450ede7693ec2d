"""Tie a child process's life to its parent's: no orphans, even when the parent is SIGKILLed.

The parent puts its PID into the child's environment (`child_environment()`); the child calls
`die_with_parent()` first thing. Linux then signals the child when its parent dies
(PR_SET_PDEATHSIG); the PID check closes the race where the parent died before the prctl.
This avoids `preexec_fn`, which is unsafe in a multi-threaded parent such as an rclpy process.

The launch files set the tie too (the launch process's PID): a failed or SIGTERMed
`ros2 launch` takes the cell along. A launch prefix (`--launch-prefix 'gdb -ex run --args'`)
puts a wrapper between the two; the tie then follows the wrapper, which is the child's parent.
"""

import ctypes
import logging
import os
from pathlib import Path
import signal

PARENT_PID_ENV = 'SENSOR_WORKERS_PARENT_PID'
# The write end of the heartbeat pipe a manager hands each worker it spawns (heartbeat.py).
HEARTBEAT_FD_ENV = 'SENSOR_WORKERS_HEARTBEAT_FD'
_PR_SET_PDEATHSIG = 1
log = logging.getLogger(__name__)


def child_environment() -> dict[str, str]:
    """Return the variables a child needs to follow this process into death."""
    return {PARENT_PID_ENV: str(os.getpid())}


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Ask the kernel for `signum` when the parent that set PARENT_PID_ENV dies."""
    expected = os.environ.pop(PARENT_PID_ENV, None)
    if expected is None:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        log.warning('prctl(PR_SET_PDEATHSIG) failed: errno %d', ctypes.get_errno())
    if os.getppid() != int(expected) and not _alive(int(expected)):
        os.kill(os.getpid(), signum)


def _alive(pid: int) -> bool:
    """Tell whether `pid` runs (a dead parent lingers as a zombie until it is reaped)."""
    try:
        stat = Path(f'/proc/{pid}/stat').read_text()
    except OSError:
        return False
    return stat.rpartition(')')[2].split()[0] not in ('Z', 'X')
