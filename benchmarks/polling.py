"""Waiting for something to become true, saying what happens, reading what a process said last."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

__all__ = ["last_line", "say", "wait_until"]

T = TypeVar("T")

_STARTED = time.monotonic()


def say(text: str) -> None:
    """Print a progress line, prefixed with the seconds since the run began."""
    print(f"[{time.monotonic() - _STARTED:6.0f}s] {text}", flush=True)


def wait_until(
    condition: Callable[[], T], what: str, timeout_s: float, interval_s: float = 0.25
) -> T:
    """Poll ``condition`` until it returns something truthy, and return that.

    Raises:
        TimeoutError: naming ``what``, when ``timeout_s`` passed first.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout_s:.0f}s")
        time.sleep(interval_s)


def last_line(log: Path) -> str:
    """The last non-blank line of a log file, to say why a process failed."""
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return f"(no log at {log})"
    return lines[-1].strip() if lines else f"(empty log {log})"
