"""Errors the model lifecycle raises for a user to act on."""

from __future__ import annotations

from infra.errors import ProjectError

__all__ = ["DataError", "ModelsError", "RegistryError", "RunNotFoundError", "SettingsError"]


class ModelsError(ProjectError):
    """Base class: every message is one line naming what to fix (path, column, run id...)."""


class DataError(ModelsError):
    """The training data cannot be read or lacks a column the model needs."""


class RunNotFoundError(ModelsError):
    """An MLflow run id is unknown to the store, or the run holds no training record."""


class RegistryError(ModelsError):
    """A registered model or alias the command needs does not exist."""


class SettingsError(ModelsError, ValueError):
    """An option is out of range or inconsistent (also a ``ValueError``)."""
