"""Logging set-up of every command: text for people, or one JSON object per line for machines."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["FIELDS", "configure_logging"]

# A record's structured figures travel in ``extra={FIELDS: {...}}``.
FIELDS = "fields"
_QUIET = ("py4j", "kafka", "urllib3", "alembic", "mlflow")
# kafka-python warns when its own event loop runs slowly on a busy machine: nothing a user can
# act on, and it would be printed in the middle of a command's output.
_SILENT = ("kafka.net.selector",)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, FIELDS, None) or {})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, FIELDS, None)
        return f"{text} {json.dumps(fields, default=str)}" if fields else text


def configure_logging(level: str = "INFO", fmt: Literal["text", "json"] = "text") -> None:
    """Log to stderr at ``level`` in ``fmt``; chatty client libraries only from WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    # Replace only a handler of ours (a second command in one process, a test), never others.
    for existing in list(root.handlers):
        if getattr(existing, "_project_handler", False):
            root.removeHandler(existing)
    handler._project_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in _QUIET:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for silent in _SILENT:
        logging.getLogger(silent).setLevel(logging.ERROR)
