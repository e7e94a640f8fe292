"""Fixtures of the model lifecycle tests: a listings Delta table, small training specs."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from models.listings import DataSource, generate_listings, write_listings
from models.pipeline import RegressorParams
from models.training import TrainingSpec

# MLflow must not report usage over the network from the tests.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

TABLE_ROWS = 2500
SMALL_FOREST = RegressorParams(num_trees=8, max_depth=5)


@pytest.fixture(scope="session")
def listings_table(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Delta table of generated listings at version 0, shared read-only by the tests."""
    path = str(tmp_path_factory.mktemp("data") / "listings")
    write_listings(spark, generate_listings(TABLE_ROWS, seed=7), path)
    return path


@pytest.fixture
def model_name() -> str:
    """A registered model name of this test's own."""
    return f"listing-price-test-{uuid.uuid4().hex[:8]}"


def small_spec(path: str | Path, **overrides: object) -> TrainingSpec:
    """A quick training spec: a small forest on two partitions."""
    values: dict[str, object] = {
        "source": DataSource(str(path)),
        "regressor": SMALL_FOREST,
        "seed": 11,
        "partitions": 2,
    }
    values.update(overrides)
    return TrainingSpec(**values)  # type: ignore[arg-type]
