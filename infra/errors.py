"""The base error every user-facing error of the project derives from."""

from __future__ import annotations

import re

__all__ = ["ProjectError", "first_line"]


class ProjectError(Exception):
    """An error a user can act on: its message is one line that says what to fix.

    The command line prints it as ``error: <message>`` and exits with code 2.
    """


_TRACEBACK = "Traceback (most recent call last):"
_RAISED = re.compile(r"^[A-Za-z_][\w.]*: .+")


def _python_cause(text: str) -> str | None:
    """The ``Type: message`` line a Python traceback inside ``text`` ends with."""
    _, found, rest = text.rpartition(_TRACEBACK)
    if not found:
        return None
    for line in rest.splitlines():
        if line and not line[0].isspace() and _RAISED.match(line):
            return line.strip()
    return None


def first_line(error: BaseException | str) -> str:
    """The first non-empty line of an error's message, or the error's type name.

    Java exceptions surfaced by py4j carry whole stack traces; a user sees only this line.
    When the error wraps a Python traceback (an exception raised in a Spark Python worker,
    such as a model's ``predict``), the line is the one that traceback ends with: what was
    raised, not Spark's preamble.
    """
    text = error if isinstance(error, str) else str(error)
    cause = _python_cause(text)
    if cause is not None:
        return cause
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return "unknown error" if isinstance(error, str) else type(error).__name__
