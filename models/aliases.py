"""Registry aliases: every new version becomes ``challenger``; ``champion`` is what is served."""

from __future__ import annotations

from typing import Final

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.tracking import MlflowClient

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "DEFAULT_MODEL_NAME",
    "alias_version",
    "assign_new_version_aliases",
    "model_uri",
    "sklearn_model_name",
]

DEFAULT_MODEL_NAME: Final = "listing-price"
CHAMPION: Final = "champion"
CHALLENGER: Final = "challenger"


def model_uri(name: str, alias: str = CHAMPION) -> str:
    """``models:/NAME@ALIAS``, the URI the streaming service follows."""
    return f"models:/{name}@{alias}"


def sklearn_model_name(name: str) -> str:
    """Default registered name of the scikit-learn model trained next to MLlib model ``name``."""
    return f"{name}-sklearn"


def _not_found(error: MlflowException) -> bool:
    return error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version an alias points at.

    Returns:
        The model version, or ``None`` when the registered model or the alias does not exist.

    Raises:
        MlflowException: the registry cannot be reached.
    """
    try:
        # Not get_model_version_by_alias: stores disagree on the error code of a missing alias.
        version = client.get_registered_model(name).aliases.get(alias)
    except MlflowException as e:
        if _not_found(e):
            return None
        raise
    return None if version is None else client.get_model_version(name, str(version))


def assign_new_version_aliases(client: MlflowClient, name: str, version: str) -> tuple[str, ...]:
    """Point ``challenger`` at a newly registered version, and ``champion`` if none exists yet.

    Returns:
        The aliases set, e.g. ``("challenger", "champion")`` for the first version.
    """
    assigned = [CHALLENGER]
    client.set_registered_model_alias(name, CHALLENGER, version)
    if alias_version(client, name, CHAMPION) is None:
        client.set_registered_model_alias(name, CHAMPION, version)
        assigned.append(CHAMPION)
    return tuple(assigned)
