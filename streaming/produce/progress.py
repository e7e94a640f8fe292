"""A send's progress on stderr: one line rewritten on a terminal, else a line every few seconds."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from streaming.produce.producer import Progress

__all__ = ["ProgressLine"]

_TERMINAL_INTERVAL_S = 0.2
_LOG_INTERVAL_S = 5.0


class ProgressLine:
    """Shows a send's figures on ``stream`` while it runs.

    On a terminal the line rewrites itself (at most five times a second) and ends with a newline
    when the send ends; elsewhere (a log file, a CI job) a new line is written every
    ``interval_s`` seconds.
    """

    def __init__(
        self,
        stream: TextIO,
        topic: str,
        total: int | None = None,
        interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._topic = topic
        self._total = total
        self._terminal = stream.isatty()
        default = _TERMINAL_INTERVAL_S if self._terminal else _LOG_INTERVAL_S
        self._interval = default if interval_s is None else interval_s
        self._clock = clock
        self._last_shown = clock()
        self._width = 0
        self._latest: Progress | None = None

    def text(self, progress: Progress) -> str:
        """The line for ``progress``."""
        sent = f"{progress.sent}"
        if self._total:
            sent += f"/{self._total} ({100 * progress.sent / self._total:.0f}%)"
        return (
            f"producing to {self._topic}: {sent} sent, {progress.acknowledged} acknowledged, "
            f"{progress.failed} failed, {progress.rate:.1f} events/s, {progress.seconds:.0f} s"
        )

    def show(self, progress: Progress) -> None:
        """Take the latest figures; write them when the interval has passed."""
        self._latest = progress
        now = self._clock()
        if now - self._last_shown >= self._interval:
            self._last_shown = now
            self._write(progress)

    def _write(self, progress: Progress) -> None:
        line = self.text(progress)
        if self._terminal:
            self._stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def __enter__(self) -> ProgressLine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._terminal and self._latest is not None:
            self._write(self._latest)
            self._stream.write("\n")
            self._stream.flush()
