"""Opening the MLflow store and experiment a command logs to."""

from __future__ import annotations

from typing import Final

import mlflow
from mlflow.tracking import MlflowClient

from infra.tracking import TrackingStore, configure_tracking, ensure_experiment

__all__ = ["COMMAND_TAG", "DEFAULT_EXPERIMENT_NAME", "open_experiment", "registry_client"]

DEFAULT_EXPERIMENT_NAME: Final = "listing-price"
COMMAND_TAG: Final = "models.command"


def open_experiment(store: TrackingStore, name: str, experiment_id: str | None = None) -> str:
    """Point MLflow at ``store`` and make an experiment active.

    Args:
        store: Where runs and models live.
        name: Experiment created if missing.
        experiment_id: An existing experiment to use instead (``mlflow run`` passes one).

    Returns:
        The active experiment's id.
    """
    configure_tracking(store)
    if experiment_id is not None:
        mlflow.set_experiment(experiment_id=experiment_id)
        return experiment_id
    return ensure_experiment(store, name)


def registry_client(store: TrackingStore) -> MlflowClient:
    """A client for the store's tracking server and model registry."""
    return MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)
