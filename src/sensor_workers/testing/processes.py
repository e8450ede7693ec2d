"""Start processes, wait for what they print, and make sure they are gone afterwards."""

from collections.abc import Collection, Iterator, Mapping, Sequence
import contextlib
import ctypes
import logging
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import tempfile
import time

import psutil

from sensor_workers import lifetime

log = logging.getLogger(__name__)

_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Adopt orphaned descendants, so a process whose parent died still shows up as ours."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        log.warning('prctl(PR_SET_CHILD_SUBREAPER) failed: errno %d', ctypes.get_errno())


def live_descendants() -> list[psutil.Process]:
    """Return the descendants of this process that are still running (zombies are reaped)."""
    alive = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)
                continue
            alive.append(child)
        except (psutil.NoSuchProcess, ChildProcessError):
            continue
    return alive


def is_gone(pid: int) -> bool:
    """Tell whether `pid` has ended (a zombie counts as ended).

    One look at the process: checking that it exists and then reading its status races its
    reaping, and psutil raises NoSuchProcess in between.
    """
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@contextlib.contextmanager
def log_directory(keep: Path | None, prefix: str) -> Iterator[Path]:
    """Yield `keep` (made if missing), where logs outlive the run, or else a temporary one."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as directory:
        yield Path(directory)


class ManagedProcess:
    """A child process whose output goes to a log file that can be waited on."""

    def __init__(
        self,
        name: str,
        cmd: Sequence[str],
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        unset: Collection[str] = (),
        stdin: int = subprocess.DEVNULL,
    ) -> None:
        """`env` is added to this process's environment; the variables in `unset` are removed.

        `stdin=subprocess.PIPE`: write to the process through `popen.stdin`.
        """
        self.name = name
        self.log_path = log_dir / f'{name}.log'
        self._log_file = open(self.log_path, 'wb')  # noqa: SIM115 closed in stop()
        full_env = dict(os.environ)
        full_env.update(env or {})
        for variable in unset:
            full_env.pop(variable, None)
        full_env.setdefault('PYTHONUNBUFFERED', '1')
        # Every command dies with the test run, even when it is SIGKILLed or OOM-killed: the tie
        # is armed before the command is exec'd (lifetime.tied_command; processes are started
        # from pytest's main thread). Our programs pass it on to their children (environment).
        full_env.update(lifetime.child_environment())
        self.popen = subprocess.Popen(
            lifetime.tied_command(cmd), stdout=self._log_file, stderr=subprocess.STDOUT,
            stdin=stdin, env=full_env, cwd=cwd)
        self.pid = self.popen.pid

    def output(self) -> str:
        return self.log_path.read_text(errors='replace')

    def wait_for_output(self, pattern: str, timeout: float) -> re.Match:
        """Wait until the output matches `pattern` (a regex); fail if the process exits first."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.output())
            if match:
                return match
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f'{self.name} exited ({self.popen.returncode}) before printing {pattern!r}:\n'
                    f'{self.tail()}')
            if time.monotonic() > deadline:
                raise TimeoutError(f'{self.name} did not print {pattern!r} in {timeout} s:\n'
                                   f'{self.tail()}')
            time.sleep(0.02)

    def tail(self, lines: int = 40) -> str:
        return '\n'.join(self.output().splitlines()[-lines:])

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.pid, signum)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; also kill descendants it left behind."""
        try:
            descendants = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            descendants = []
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning('%s ignored SIGTERM for %.1f s; killing it', self.name, timeout)
                self.popen.kill()
                self.popen.wait(5.0)
        for child in descendants:
            try:
                child.wait(timeout)
            except psutil.TimeoutExpired:
                log.warning('%s left %s (pid %d) behind; killing it',
                            self.name, child.name(), child.pid)
                child.kill()
            except psutil.NoSuchProcess:
                pass
        if self.popen.stdin is not None:
            self.popen.stdin.close()
        self._log_file.close()
        return self.popen.returncode


class ProcessGroup:
    """The processes of one test; `stop_all()` ends them in reverse start order."""

    def __init__(self, log_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self.log_dir = log_dir
        self.env = dict(env or {})
        self.processes: list[ManagedProcess] = []

    def start(
        self, name: str, cmd: Sequence[str], env: Mapping[str, str] | None = None,
        unset: Collection[str] = (), stdin: int = subprocess.DEVNULL,
    ) -> ManagedProcess:
        merged = {**self.env, **(env or {})}
        process = ManagedProcess(name, cmd, self.log_dir, merged, unset=unset, stdin=stdin)
        self.processes.append(process)
        return process

    def start_python(
        self, name: str, module: str, *args: str, env: Mapping[str, str] | None = None,
        unset: Collection[str] = (), stdin: int = subprocess.DEVNULL,
    ) -> ManagedProcess:
        """Start `python -m module args...` with this interpreter (a fresh process)."""
        return self.start(name, [sys.executable, '-m', module, *args], env, unset, stdin)

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
