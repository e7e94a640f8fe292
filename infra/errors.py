"""The base error every user-facing error of the project derives from."""

from __future__ import annotations

__all__ = ["ProjectError", "first_line"]


class ProjectError(Exception):
    """An error a user can act on: its message is one line that says what to fix.

    The command line prints it as ``error: <message>`` and exits with code 2.
    """


def first_line(error: BaseException | str) -> str:
    """The first non-empty line of an error's message, or the error's type name.

    Java exceptions surfaced by py4j carry whole stack traces; a user sees only this line.
    """
    text = error if isinstance(error, str) else str(error)
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return "unknown error" if isinstance(error, str) else type(error).__name__
