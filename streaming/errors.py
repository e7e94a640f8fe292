"""Errors the service raises for a user to act on."""

from __future__ import annotations

from infra.errors import ProjectError

__all__ = [
    "CheckpointMismatchError",
    "ConfigurationError",
    "ModelLoadError",
    "StreamingError",
]


class StreamingError(ProjectError):
    """Base class: every message is one line a user can act on."""


class ConfigurationError(StreamingError):
    """Bad configuration found at start (unknown model, unreachable broker, bad path...)."""


class ModelLoadError(StreamingError):
    """A model version could not be loaded or failed its compatibility check."""


class CheckpointMismatchError(StreamingError):
    """The checkpoint and the output tables disagree about what was already written."""
