"""Polling with a deadline, for tests and benchmarks that wait on other processes."""

from collections.abc import Callable
import time
from typing import Any


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, period: float = 0.05,
               tolerate: tuple[type[BaseException], ...] = ()) -> Any:
    """Return the first truthy value of `predicate()`, polled every `period` s.

    Exceptions of the `tolerate` types count as "not yet" (a server still starting, a key not
    published yet). Raises TimeoutError naming `what` when `timeout` s pass.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except tolerate:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f'timed out after {timeout:g} s waiting for {what}')
        time.sleep(period)
