"""Tie a child process's life to its parent's: no orphans, even when the parent is SIGKILLed.

The parent puts its PID into the child's environment (`child_environment()`); the child calls
`die_with_parent()` first thing. Linux then signals the child when its parent dies
(PR_SET_PDEATHSIG); the PID check closes the race where the parent died before the prctl.
This avoids `preexec_fn`, which is unsafe in a multi-threaded parent such as an rclpy process.

For a program that does not arm the tie itself (a benchmark's probe, node, a `python -c`), the
test and benchmark harness starts it through `tied_command()`, which arms the tie and execs the
program: util-linux's `setpriv --pdeathsig`, then a shell that checks the parent's PID (~2 ms),
or, where setpriv is missing, this file run as a script without `site` (~45 ms). The PID check
is what makes the tie hold when the parent dies between the fork and the prctl: the kernel then
has nobody to watch, and setpriv alone would exec the program as an orphan. The tie outlives
the exec (PR_SET_PDEATHSIG is kept unless the program is set-user-ID). The delay counts: a
signal that reaches the command before its own handlers are in place ends it by default action.

The launch files set the tie too (the launch process's PID): a failed or SIGTERMed
`ros2 launch` takes the cell along. A launch prefix (`--launch-prefix 'gdb -ex run --args'`)
puts a wrapper between the two; the tie then follows the wrapper, which is the child's parent.
"""

from collections.abc import Sequence
import ctypes
import os
import shutil
import signal
import sys

PARENT_PID_ENV = 'SENSOR_WORKERS_PARENT_PID'
# The write end of the heartbeat pipe a manager hands each worker it spawns (heartbeat.py).
HEARTBEAT_FD_ENV = 'SENSOR_WORKERS_HEARTBEAT_FD'
_PR_SET_PDEATHSIG = 1
_EXEC_IF_PARENT_UNCHANGED = '[ "$PPID" = "$0" ] && exec "$@"'


def child_environment() -> dict[str, str]:
    """Return the variables a child needs to follow this process into death."""
    return {PARENT_PID_ENV: str(os.getpid())}


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Ask the kernel for `signum` when the parent that set PARENT_PID_ENV dies."""
    expected = os.environ.pop(PARENT_PID_ENV, None)
    if expected is not None:
        tie_to(int(expected), signum)


def tie_to(parent: int, signum: int = signal.SIGTERM) -> None:
    """Ask the kernel for `signum` when our parent dies; `parent` is the PID it should have.

    A parent that died before the prctl (we were adopted meanwhile) sends `signum` at once.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        import logging  # here only: tied_command() starts every test process through this file

        logging.getLogger(__name__).warning('prctl(PR_SET_PDEATHSIG) failed: errno %d',
                                            ctypes.get_errno())
    if os.getppid() != parent and not _alive(parent):
        os.kill(os.getpid(), signum)


def _alive(pid: int) -> bool:
    """Tell whether `pid` runs (a dead parent lingers as a zombie until it is reaped)."""
    try:
        with open(f'/proc/{pid}/stat') as file:
            stat = file.read()
    except OSError:
        return False
    return stat.rpartition(')')[2].split()[0] not in ('Z', 'X')


def tied_command(command: Sequence[str], use_setpriv: bool = True) -> list[str]:
    """Return `command` started so that it dies with this process, whatever it runs."""
    setpriv = shutil.which('setpriv') if use_setpriv else None
    if setpriv is not None:
        # $0 is our PID; a shell whose parent is another process was orphaned before the prctl.
        return [setpriv, '--pdeathsig', 'TERM', '--', '/bin/sh', '-c', _EXEC_IF_PARENT_UNCHANGED,
                str(os.getpid()), *command]
    # -I: not even this file's directory on sys.path (its modules must not shadow the stdlib)
    return [sys.executable, '-I', '-S', __file__, str(os.getpid()), *command]


if __name__ == '__main__':  # tied_command(): only the standard library is importable here
    tie_to(int(sys.argv[1]))
    os.execvp(sys.argv[2], sys.argv[2:])
