"""One way to wait for something that announces itself by no event: ask again until it holds."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], timeout_s: float, interval_s: float, message: str | Callable[[], str]
) -> T:
    """Call `condition` every `interval_s` until it returns a truthy value, and return that value.

    After `timeout_s` it raises AssertionError with `message`; a callable message is called then, for
    text only known at that point (a server's log, the last state seen). `condition` may raise to stop
    the wait early, e.g. when the process it waits on has exited.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(message() if callable(message) else message)
        time.sleep(interval_s)
