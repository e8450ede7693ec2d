"""Peak resident memory of a test run: this process and every descendant, sampled in a thread."""

from dataclasses import dataclass
import threading

import psutil

SAMPLE_PERIOD_S = 0.5


@dataclass
class Peak:
    rss_bytes: int = 0
    command: str = ''


class MemoryWatch:
    """Track the largest resident set of this process and of any of its descendants."""

    def __init__(self, bound_bytes: int) -> None:
        self.bound_bytes = bound_bytes
        self.own = Peak()
        self.child = Peak()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='memory-watch', daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self.sample()

    def exceeded(self) -> bool:
        return max(self.own.rss_bytes, self.child.rss_bytes) > self.bound_bytes

    def report(self) -> str:
        return (f'peak resident memory: test process {self.own.rss_bytes >> 20} MB, largest '
                f'child {self.child.rss_bytes >> 20} MB ({self.child.command[:100]}); bound '
                f'{self.bound_bytes >> 20} MB')

    def sample(self) -> None:
        me = psutil.Process()
        self._take(self.own, me)
        for child in me.children(recursive=True):
            self._take(self.child, child)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_PERIOD_S):
            self.sample()

    @staticmethod
    def _take(peak: Peak, process: psutil.Process) -> None:
        try:
            rss = process.memory_info().rss
            if rss > peak.rss_bytes:
                peak.rss_bytes = rss
                peak.command = ' '.join(process.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
