"""Peak resident memory of a process tree, sampled from ``/proc``."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType

__all__ = ["PeakMemory", "tree_rss_bytes"]

_PROC = Path("/proc")
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def _parents() -> dict[int, int]:
    """Parent pid of every process visible in ``/proc``."""
    parents = {}
    for stat in _PROC.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # the process ended meanwhile
        # The command name is in parentheses and may hold spaces: read after the last ')'.
        fields = text[text.rindex(")") + 2 :].split()
        parents[int(stat.parent.name)] = int(fields[1])
    return parents


def _rss_bytes(pid: int) -> int:
    try:
        resident_pages = int((_PROC / str(pid) / "statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return resident_pages * _PAGE_BYTES


def tree_rss_bytes(root: int) -> int:
    """Sum of the resident memory of ``root`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        total += _rss_bytes(pid)
        pending.extend(children.get(pid, ()))
    return total


class PeakMemory:
    """Samples a process tree's resident memory in a thread and keeps the peak.

    Use as a context manager, or call ``start`` and ``stop``; ``peak_bytes`` holds the peak seen
    so far.

    Args:
        root: The tree's root process (default: this process).
        interval_s: Seconds between samples.
    """

    def __init__(self, root: int | None = None, interval_s: float = 0.5) -> None:
        self.root = os.getpid() if root is None else root
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak_bytes = max(self.peak_bytes, tree_rss_bytes(self.root))
            if self._stop.wait(self.interval_s):
                return

    def start(self) -> PeakMemory:
        """Start sampling."""
        self._thread.start()
        return self

    def stop(self) -> int:
        """Stop sampling (idempotent); returns the peak in bytes."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        return self.peak_bytes

    def __enter__(self) -> PeakMemory:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
