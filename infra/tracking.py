"""The MLflow store: an embedded sqlite file and local artifact folder unless a URI is given."""

from __future__ import annotations

import logging
from pathlib import Path

__all__ = ["TrackingStore", "configure_tracking", "ensure_experiment"]


class TrackingStore:
    """Where runs, models and the registry live.

    Args:
        local_dir: Folder for the embedded store's database and artifacts (by default
            ``ProjectHome.mlflow_store``).
        tracking_uri: An MLflow tracking URI; ``None`` means the embedded sqlite store under
            ``local_dir``.
    """

    def __init__(self, local_dir: Path, tracking_uri: str | None = None) -> None:
        self.local_dir = local_dir
        self.tracking_uri = tracking_uri or f"sqlite:///{local_dir / 'mlflow.db'}"

    @property
    def embedded(self) -> bool:
        return (
            self.tracking_uri.startswith("sqlite:///") and str(self.local_dir) in self.tracking_uri
        )

    @property
    def artifact_root(self) -> str | None:
        """Artifact folder for new experiments in the embedded store (a server decides its own)."""
        return (self.local_dir / "artifacts").as_uri() if self.embedded else None


def configure_tracking(store: TrackingStore) -> None:
    """Point this process's MLflow client (tracking and registry) at ``store``.

    MLflow's usage telemetry is turned off unless the user turned it on: no network calls
    that the user did not ask for.
    """
    import os

    import mlflow

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # MLflow sets its own loggers to INFO when first imported; its database set-up chatter is
    # not the user's business at the default level.
    logging.getLogger("mlflow").setLevel(max(logging.getLogger().level, logging.WARNING))

    if store.embedded:
        store.local_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(store.tracking_uri)
    mlflow.set_registry_uri(store.tracking_uri)


def ensure_experiment(store: TrackingStore, name: str) -> str:
    """Create the experiment if missing (artifacts under the store's folder) and make it active.

    Returns:
        The experiment id.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)
    experiment = client.get_experiment_by_name(name)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(name, artifact_location=store.artifact_root)
    )
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id
