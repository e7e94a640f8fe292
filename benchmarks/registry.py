"""The two models every arm serves, trained on the demo's listings and registered once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from infra.tracking import TrackingStore, ensure_experiment
from models.aliases import CHAMPION, alias_version
from models.experiments import registry_client
from models.listings import FEATURE_COLUMNS, LABEL_COLUMN
from models.registry import ensure_registered_model
from models.sklearn_pipeline import SKOPS_TRUSTED_TYPES, build_sklearn_pipeline
from models.training import input_example, model_signature

__all__ = ["MLLIB_NAME", "SKLEARN_NAME", "BenchmarkModels", "register_models"]

MLLIB_NAME = "benchmark-mllib"
SKLEARN_NAME = "benchmark-sklearn"
_SKLEARN_TREES = 20  # as many as the MLlib forest has
_SKLEARN_DEPTH = 6


@dataclass(frozen=True)
class BenchmarkModels:
    """Pinned registry URIs (``models:/NAME/VERSION``) of the models, and their store."""

    mllib_uri: str
    sklearn_uri: str
    store: TrackingStore


def _pinned_champion(store: TrackingStore, name: str) -> str:
    version = alias_version(registry_client(store), name, CHAMPION)
    if version is None:
        raise RuntimeError(f"{name} has no {CHAMPION} after training")
    return f"models:/{name}/{version.version}"


def _register_sklearn(spark: SparkSession, store: TrackingStore, data_path: str, seed: int) -> str:
    """Fit the scikit-learn pipeline on the same listings and register it (a pyfunc)."""
    listings = spark.read.format("delta").load(data_path).where(F.col(LABEL_COLUMN) > 0)
    features = listings.select(*FEATURE_COLUMNS)
    frame: pd.DataFrame = listings.toPandas()
    model = build_sklearn_pipeline(seed, n_estimators=_SKLEARN_TREES, max_depth=_SKLEARN_DEPTH)
    model.fit(frame[list(FEATURE_COLUMNS)], frame[LABEL_COLUMN])
    ensure_experiment(store, "benchmarks")
    with mlflow.start_run(run_name=SKLEARN_NAME):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=model_signature(features),
            input_example=input_example(features, FEATURE_COLUMNS),
            registered_model_name=SKLEARN_NAME,
            pip_requirements=["scikit-learn"],
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
            skops_trusted_types=list(SKOPS_TRUSTED_TYPES),
        )
    return f"models:/{SKLEARN_NAME}/{info.registered_model_version}"


def register_models(
    spark: SparkSession, store: TrackingStore, data_dir: Path, seed: int = 42
) -> BenchmarkModels:
    """Write the demo's synthetic listings, train and register an MLlib and a scikit-learn model.

    The MLlib model is trained the way ``scripts/demo`` trains it (``models.registry``).
    """
    data_path = str(data_dir / "listings")
    ensure_registered_model(spark, store, MLLIB_NAME, data_path, seed=seed)
    return BenchmarkModels(
        mllib_uri=_pinned_champion(store, MLLIB_NAME),
        sklearn_uri=_register_sklearn(spark, store, data_path, seed),
        store=store,
    )
