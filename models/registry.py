"""Make sure a servable model exists: what the demo calls before starting the stream."""

from __future__ import annotations

import logging
from typing import Final

from pyspark.sql import SparkSession

from infra.tracking import TrackingStore, configure_tracking
from models.aliases import CHAMPION, alias_version, model_uri
from models.experiments import registry_client
from models.listings import (
    DataSource,
    generate_listings,
    is_missing_local_path,
    write_listings,
)
from models.training import TrainingSpec, TrainSettings, train

__all__ = ["DEMO_ROWS", "ensure_registered_model"]

_log = logging.getLogger(__name__)

DEMO_ROWS: Final = 5000


def ensure_registered_model(
    spark: SparkSession,
    store: TrackingStore,
    name: str,
    data_path: str,
    generate_if_missing: bool = True,
    seed: int = 42,
) -> str:
    """Train and register a first model unless ``name`` already has a ``champion``.

    Args:
        spark: The session.
        store: Where runs and models live.
        name: Registered model name.
        data_path: Training data (Delta, Parquet or CSV).
        generate_if_missing: When ``data_path`` is a local path that does not exist, write
            synthetic listings there first (for demos).
        seed: Seed of the generator and the training run.

    Returns:
        ``models:/NAME@champion``.

    Raises:
        DataError: the data cannot be read or lacks a needed column.
    """
    configure_tracking(store)
    if alias_version(registry_client(store), name, CHAMPION) is not None:
        return model_uri(name, CHAMPION)
    if generate_if_missing and is_missing_local_path(data_path):
        _log.info("writing %d synthetic listings to %s", DEMO_ROWS, data_path)
        write_listings(spark, generate_listings(DEMO_ROWS, seed=seed), data_path)
    result = train(
        spark,
        store,
        TrainSettings(spec=TrainingSpec(source=DataSource(data_path), seed=seed), model_name=name),
    )
    _log.info("registered %s version %s as %s", name, result.model_version, result.aliases)
    return model_uri(name, CHAMPION)
