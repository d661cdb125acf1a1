"""Waiting with a deadline: call a check until it is done, or give up with what was seen last.

Every wait of a run (a batch final, workers consuming, a night reported, the demo's progress
bar) is this one loop with its own check. The check is also where a caller samples its
processes or redraws a display, so the loop stays the same for all of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(
    check: Callable[[], T], done: Callable[[T], object], timeout_s: float, every_s: float
) -> T:
    """``check()`` every ``every_s`` until ``done`` of its value, or the deadline has passed;
    returns the last value either way (the caller decides whether a timeout is an error)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(every_s)


def until(
    check: Callable[[], T],
    timeout_s: float,
    what: str | Callable[[T], str],
    *,
    every_s: float = 0.25,
    done: Callable[[T], object] = bool,
) -> T:
    """As ``poll``, but a deadline passed raises ``TimeoutError(what)``; ``what`` may be a
    function of the last value, to say what was seen instead."""
    value = poll(check, done, timeout_s, every_s)
    if not done(value):
        raise TimeoutError(what if isinstance(what, str) else what(value))
    return value
