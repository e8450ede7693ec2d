"""Is a worker alive? The manager's one judge of a worker's heartbeats. Pure: no ROS, no clock.

Inputs are the heartbeat records the worker's loop wrote into its pipe (each with the time the
loop sent it, on the system-wide monotonic clock), what /proc says of the loop thread when the
beats stop, and how late the manager's own tick runs. The verdict tells apart:

- a *hung* worker: its loop thread is stopped (SIGSTOP, a debugger), gone, or still silent after
  `grace_s`; or busy on a CPU without beating (it ran for at least `busy_share` of the silence
  so far): MISSED after `heartbeat_timeout_s`;
- a *blocked* worker: the loop thread sleeps in the kernel (a lock, I/O, the GIL held by a
  thread stuck in DDS): LATE until `grace_s`, then MISSED;
- a *starved* worker: the loop thread is runnable but gets no CPU: LATE until `grace_s`;
- the manager's own starvation: a tick later than half the timeout judges nothing, since the
  beats that arrived meanwhile are judged by their send time on the next tick;
- a *stalled* device: beats arrive but `samples` does not advance for `stall_timeout_s`.

Send times, not arrival times, are what is judged: a worker that beat on time is never failed
because the manager read its pipe late.
"""

from dataclasses import dataclass
from enum import StrEnum
import os

# Clock ticks per second of /proc's CPU times.
CLOCK_TICKS = os.sysconf('SC_CLK_TCK')


class Verdict(StrEnum):
    OK = 'ok'
    # Silent past the timeout, but blocked or starved rather than hung: not yet a failure.
    LATE = 'late'
    MISSED = 'missed'
    STALLED = 'stalled'
    # The manager itself ran late; no judgement this tick.
    MANAGER_LATE = 'manager_late'


@dataclass(frozen=True)
class LivenessConfig:
    heartbeat_timeout_s: float = 0.3
    stall_timeout_s: float = 2.0
    # How long a blocked or starved loop may stay silent before it counts as hung.
    grace_s: float = 2.0
    # A silent loop thread that ran this share of the time is spinning; a starved one, runnable
    # but mostly waiting for a CPU, gains a few ticks too.
    busy_share: float = 0.5
    # Extra time for the first beat after activation (the loop thread is just starting).
    first_beat_grace_s: float = 1.0


@dataclass(frozen=True)
class ThreadSample:
    """What /proc/<pid>/task/<tid>/stat says of the loop thread."""

    # One letter: R running or runnable, S/D sleeping, T/t stopped, Z/X gone ('' unreadable).
    state: str
    # utime + stime in clock ticks.
    cpu_ticks: int
    # The kernel function a sleeping thread waits in (/proc/.../wchan), '' when unknown.
    wait_channel: str = ''

    def describe(self) -> str:
        return f'state {self.state} in {self.wait_channel}' if self.wait_channel else \
            f'state {self.state}'


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    # Seconds since the loop last beat (or since activation, before the first beat).
    silence_s: float
    reason: str = ''


class Liveness:
    """The liveness of one worker process, from activation on."""

    def __init__(self, config: LivenessConfig, active_at: float) -> None:
        self.config = config
        self.active_at = active_at
        self.last_sent: float | None = None
        self.loop_tid = 0
        self.samples = 0
        self.samples_changed_at = active_at + config.first_beat_grace_s
        # (time, CPU ticks of the loop thread) when the silence was first noticed.
        self._silent_cpu: tuple[float, int] | None = None

    def beat(self, sent_at: float, samples: int, tid: int) -> None:
        """Take one heartbeat record (`sent_at` on the monotonic clock)."""
        if self.last_sent is not None and sent_at <= self.last_sent:
            return  # older than one already seen
        self.last_sent = sent_at
        self.loop_tid = tid
        self._silent_cpu = None
        if samples != self.samples:
            self.samples = samples
            self.samples_changed_at = max(self.samples_changed_at, sent_at)

    def judge(self, now: float, tick_late_s: float, thread: ThreadSample | None) -> Judgement:
        """Judge at `now`; `thread` is the loop thread's /proc sample (None: none known)."""
        config = self.config
        if self.last_sent is None:
            silence = now - self.active_at
            limit = config.heartbeat_timeout_s + config.first_beat_grace_s
        else:
            silence = now - self.last_sent
            limit = config.heartbeat_timeout_s
        if tick_late_s > config.heartbeat_timeout_s / 2:
            return Judgement(Verdict.MANAGER_LATE, silence,
                             f'manager tick {tick_late_s * 1000:.0f} ms late')
        if silence <= limit:
            stalled_for = now - self.samples_changed_at
            if stalled_for > config.stall_timeout_s:
                return Judgement(Verdict.STALLED, stalled_for)
            return Judgement(Verdict.OK, silence)
        return self._silent(now, silence, thread)

    def _busy(self, now: float, thread: ThreadSample) -> bool:
        """Return whether the loop thread ran `busy_share` of the time since the silence began."""
        if self._silent_cpu is None:
            self._silent_cpu = (now, thread.cpu_ticks)
            return False
        since, ticks = self._silent_cpu
        ran_s = (thread.cpu_ticks - ticks) / CLOCK_TICKS
        return now > since and ran_s >= self.config.busy_share * (now - since)

    def _silent(self, now: float, silence: float, thread: ThreadSample | None) -> Judgement:
        if thread is None or thread.state in ('', 'Z', 'X', 'x'):
            return Judgement(Verdict.MISSED, silence, 'loop thread gone')
        if thread.state in ('T', 't'):
            return Judgement(Verdict.MISSED, silence, 'process stopped')
        if self._busy(now, thread):
            return Judgement(Verdict.MISSED, silence, 'loop busy without beating')
        if thread.state == 'R':
            reason = 'loop thread starved of CPU'
        else:
            reason = f'loop thread blocked ({thread.describe()})'
        if silence <= self.config.grace_s:
            return Judgement(Verdict.LATE, silence, reason)
        return Judgement(Verdict.MISSED, silence, f'loop silent, thread {thread.describe()}')


def parse_thread_stat(text: str, wchan: str = '') -> ThreadSample:
    """Parse /proc/<pid>/task/<tid>/stat (the name, in parentheses, may contain spaces).

    `wchan`: that thread's /proc/.../wchan ('0' when it waits in none).
    """
    fields = text.rpartition(')')[2].split()
    # After the name: state is field 3; utime and stime are fields 14 and 15 (1-based).
    return ThreadSample(state=fields[0], cpu_ticks=int(fields[11]) + int(fields[12]),
                        wait_channel='' if wchan.strip() == '0' else wchan.strip())
