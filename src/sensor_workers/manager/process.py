"""Worker processes: spawn (a fresh interpreter, never a fork), tune, watch and end them.

No ROS here. Three rules shape this module:
- No `preexec_fn`: the manager runs rclpy threads, and running Python between fork and exec in
  a multi-threaded parent can deadlock. CPU affinity and scheduling are applied to the child's
  pid right after it starts (the child is still single-threaded then, so the threads it creates
  later inherit them).
- Children are tied to the manager's life with `lifetime.child_environment()`; the worker arms
  PR_SET_PDEATHSIG. That signal fires when the *thread* that spawned the child ends, so every
  child is spawned from one long-lived thread (`Spawner`), not from a worker pool or a timer.
- A process exit is noticed at once: a reaper thread per child blocks in `wait()`.
- Each worker gets its own process group, so a Ctrl-C in the manager's terminal reaches only
  the manager, which then stops the workers in order (an early SIGINT would look like a crash).
- Each worker gets a heartbeat pipe (`lifetime.HEARTBEAT_FD_ENV`): its loop writes fixed-size
  records into it without blocking, and the manager reads them without DDS.
"""

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
import logging
import os
from pathlib import Path
import queue
import signal
import subprocess
import sys
import threading
import time

from sensor_workers import lifetime, paths
from sensor_workers.manager.liveness import ThreadSample, parse_thread_stat
from sensor_workers.shm_segments import remove_dead_segments

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSpec:
    """How to start the worker of one device."""

    # Device and node name (`camera`, `ft`).
    name: str
    # Python module run with `-m` (`sensor_workers.ft.node`).
    module: str
    # ROS parameter file handed to the worker (`--params-file`).
    params_file: Path | None = None
    # Extra `-p name:=value` overrides.
    parameters: Mapping[str, str] = field(default_factory=dict)
    # Extra environment on top of the manager's own (which includes LD_LIBRARY_PATH).
    env: Mapping[str, str] = field(default_factory=dict)
    # CPUs the worker may run on (empty: no restriction).
    cpu_affinity: Sequence[int] = ()
    # Nice value (0: unchanged).
    nice: int = 0
    # SCHED_FIFO priority 1-99 (0: normal scheduling; takes precedence over `nice`).
    rt_priority: int = 0
    # The worker node's log level (`--log-level <name>:=<level>`: its logger, not rcl's or
    # the middleware's); None: the worker's default.
    log_level: str | None = None

    def command(self, standby: bool = False) -> list[str]:
        """Return the worker's command line; `standby`: a warm standby of it (standby.py)."""
        launcher = ['sensor_workers.standby', self.module] if standby else [self.module]
        cmd = [sys.executable, '-m', *launcher, '--ros-args', '-r', f'__node:={self.name}']
        if self.params_file is not None:
            cmd += ['--params-file', str(self.params_file)]
        for key, value in self.parameters.items():
            cmd += ['-p', f'{key}:={value}']
        if self.log_level is not None:
            cmd += ['--log-level', f'{self.name}:={self.log_level}']
        return cmd

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(paths.fastdds_profile_environment(env))  # the user's profile wins
        env.setdefault('PYTHONUNBUFFERED', '1')
        env.update(self.env)
        env.update(lifetime.child_environment())
        return env


def parse_assignments(entries: Sequence[str], separator: str, what: str,
                      key: str = 'name') -> dict[str, str]:
    """Turn `['<key><separator>value', ...]` into a dict; raise ValueError on a malformed entry.

    `what` names the entries in the error (`environment entry`, `ft.parameters entry`), `key`
    the left-hand side (`KEY=value`, `name:=value`).
    """
    assignments = {}
    for entry in entries:
        name, sep, value = entry.partition(separator)
        if not sep or not name:
            raise ValueError(f'{what} {entry!r} is not {key}{separator}value')
        assignments[name] = value
    return assignments


def parse_env(entries: Sequence[str]) -> dict[str, str]:
    """Turn `['KEY=value', ...]` into a dict; raise ValueError on an entry without `=`."""
    return parse_assignments(entries, '=', 'environment entry', key='KEY')


def _for_each_thread(pid: int, apply: Callable[[int], object]) -> None:
    """Call `apply(tid)` for every thread of `pid`; a thread that ended meanwhile is skipped."""
    try:
        threads = [int(tid) for tid in os.listdir(f'/proc/{pid}/task')] or [pid]
    except OSError:
        threads = [pid]
    for tid in threads:
        try:
            apply(tid)
        except ProcessLookupError:
            continue


def tune(pid: int, spec: WorkerSpec) -> list[str]:
    """Apply affinity and priority to a worker; return a warning per refused setting.

    Linux applies both per thread, so every thread the process has is set; threads started
    later inherit the setting. A warm standby is tuned only when it takes over: at SCHED_FIFO
    on the live worker's CPU, its import burst starved the live worker into missed heartbeats.
    """
    warnings = []
    if spec.cpu_affinity:
        try:
            _for_each_thread(pid, lambda tid: os.sched_setaffinity(tid, spec.cpu_affinity))
        except OSError as error:
            warnings.append(f'cpu_affinity {list(spec.cpu_affinity)} refused: {error.strerror}')
    if spec.rt_priority:
        try:
            param = os.sched_param(spec.rt_priority)
            _for_each_thread(pid, lambda tid: os.sched_setscheduler(tid, os.SCHED_FIFO, param))
        except OSError as error:
            hint = ' (needs CAP_SYS_NICE or an rtprio limit)' if error.errno == 1 else ''
            warnings.append(f'SCHED_FIFO priority {spec.rt_priority} refused: '
                            f'{error.strerror}{hint}; running with normal scheduling')
    elif spec.nice:
        try:
            _for_each_thread(pid, lambda tid: os.setpriority(os.PRIO_PROCESS, tid, spec.nice))
        except OSError as error:
            hint = ' (negative values need CAP_SYS_NICE)' if error.errno == 13 else ''
            warnings.append(f'nice {spec.nice} refused: {error.strerror}{hint}')
    return warnings


def process_state(pid: int) -> str | None:
    """Return the state letter /proc/<pid>/stat gives (R, S, D, T, Z...), or None once reaped."""
    try:
        stat = Path(f'/proc/{pid}/stat').read_text()
    except OSError:
        return None
    # The state follows the command name, which is in parentheses and may contain spaces.
    return stat.rpartition(')')[2].split()[0]


def thread_sample(pid: int, tid: int) -> ThreadSample | None:
    """Sample thread `tid` of process `pid` in /proc (`tid` 0: its main thread); None if gone."""
    task = Path(f'/proc/{pid}/task/{tid or pid}')
    try:
        text = (task / 'stat').read_text()
    except OSError:
        return None
    try:
        wchan = (task / 'wchan').read_text()
    except OSError:  # it ended meanwhile; what stat said stands
        wchan = ''
    return parse_thread_stat(text, wchan)


class WorkerProcess:
    """One running worker; reports its exit code once through `on_exit`."""

    def __init__(
        self,
        spec: WorkerSpec,
        popen: subprocess.Popen,
        on_exit: Callable[['WorkerProcess', int], None],
        heartbeat_fd: int = -1,
    ) -> None:
        self.spec = spec
        self.popen = popen
        self.pid = popen.pid
        # Read end of the heartbeat pipe (non-blocking); owned by the manager's executor thread.
        self.heartbeat_fd = heartbeat_fd
        self.started = time.monotonic()
        self._on_exit = on_exit
        self._kill_timer: threading.Timer | None = None
        self._reaper = threading.Thread(
            target=self._reap, name=f'reap-{spec.name}-{self.pid}', daemon=True)
        self._reaper.start()

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def alive(self) -> bool:
        return self.popen.returncode is None

    def terminate(self, grace_s: float) -> None:
        """SIGTERM now, SIGKILL if still running after `grace_s`.

        A stopped process (SIGSTOP, a debugger) cannot act on SIGTERM: it gets SIGKILL at once,
        as it does with `grace_s` 0.
        """
        if grace_s <= 0 or self.stopped():
            self.kill()
            return
        self._signal(signal.SIGTERM)
        if self._kill_timer is None:
            self._kill_timer = threading.Timer(grace_s, self._escalate)
            self._kill_timer.daemon = True
            self._kill_timer.start()

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def read_heartbeats(self) -> bytes:
        """Return what the worker wrote into its heartbeat pipe since the last call."""
        chunks = []
        while self.heartbeat_fd >= 0:
            try:
                chunk = os.read(self.heartbeat_fd, 4096)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b''.join(chunks)

    def close_heartbeats(self) -> None:
        if self.heartbeat_fd >= 0:
            os.close(self.heartbeat_fd)
            self.heartbeat_fd = -1

    def go(self) -> bool:
        """Tell a warm standby to take over; return False if it is not listening any more."""
        stdin = self.popen.stdin
        if stdin is None:
            return False
        try:
            stdin.write(b'go\n')
            stdin.close()
        except (OSError, ValueError):
            return False
        return True

    def close_stdin(self) -> None:
        """End a waiting standby (end of input)."""
        if self.popen.stdin is not None:
            try:
                self.popen.stdin.close()
            except OSError:
                pass

    def stopped(self) -> bool:
        """Return whether the process is stopped by a signal (state T in /proc)."""
        return process_state(self.pid) in ('T', 't')

    def ended(self) -> bool:
        """Return whether the process has ended (a zombie not yet reaped, or reaped)."""
        return process_state(self.pid) in (None, 'Z', 'X', 'x')

    def _escalate(self) -> None:
        if self.alive():
            log.warning('%s (pid %d) still running after SIGTERM; sending SIGKILL',
                        self.spec.name, self.pid)
            self.kill()

    def _signal(self, signum: int) -> None:
        # Popen.send_signal does nothing once the child is reaped, so a recycled pid is safe.
        try:
            self.popen.send_signal(signum)
        except ProcessLookupError:
            pass

    def _reap(self) -> None:
        code = self.popen.wait()
        if self._kill_timer is not None:
            self._kill_timer.cancel()
        # The exit first: the scan below once took a second, and the manager judged nothing
        # of the dead worker meanwhile.
        self._on_exit(self, code)
        if code != 0:  # a clean exit removes its own shared memory; a killed worker cannot
            removed = remove_dead_segments()
            if removed:
                log.info('removed %d shared-memory segments of dead processes', len(removed))


class Spawner:
    """The one long-lived thread that starts every worker (see the module docstring)."""

    def __init__(self) -> None:
        self._requests: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name='spawner', daemon=True)
        self._thread.start()

    def spawn(
        self,
        spec: WorkerSpec,
        on_exit: Callable[[WorkerProcess, int], None],
        standby: bool = False,
    ) -> Future:
        """Start a worker (or its warm standby); the future gives (WorkerProcess, warnings)."""
        future: Future = Future()
        self._requests.put((spec, on_exit, standby, future))
        return future

    def close(self) -> None:
        """End the thread. Call only when every child has exited: they die with it."""
        self._requests.put(None)
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while (request := self._requests.get()) is not None:
            spec, on_exit, standby, future = request
            # Non-blocking on both ends: a worker never waits for the manager to read.
            read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            env = spec.environment()
            env[lifetime.HEARTBEAT_FD_ENV] = str(write_fd)
            try:
                popen = subprocess.Popen(  # noqa: S603 our own interpreter and module
                    spec.command(standby), env=env,
                    stdin=subprocess.PIPE if standby else subprocess.DEVNULL,
                    close_fds=True, pass_fds=(write_fd,), process_group=0)
            except OSError as error:
                os.close(read_fd)
                future.set_exception(error)
                continue
            finally:
                os.close(write_fd)
            warnings = [] if standby else tune(popen.pid, spec)
            future.set_result((WorkerProcess(spec, popen, on_exit, read_fd), warnings))
