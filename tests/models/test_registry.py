"""ensure_registered_model: the demo's one call that guarantees a champion exists."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient
from pyspark.sql import SparkSession

from infra.tracking import TrackingStore
from models.registry import DEMO_ROWS, ensure_registered_model


def test_first_call_generates_data_trains_and_registers_later_calls_do_nothing(
    spark: SparkSession, tracking_store: TrackingStore, tmp_path: Path, model_name: str
) -> None:
    data_path = str(tmp_path / "demo-listings")

    uri = ensure_registered_model(spark, tracking_store, model_name, data_path)

    assert uri == f"models:/{model_name}@champion"
    assert spark.read.format("delta").load(data_path).count() == DEMO_ROWS
    client = MlflowClient(tracking_store.tracking_uri, tracking_store.tracking_uri)
    assert [str(v.version) for v in client.search_model_versions(f"name = '{model_name}'")] == ["1"]

    assert ensure_registered_model(spark, tracking_store, model_name, data_path) == uri
    assert len(client.search_model_versions(f"name = '{model_name}'")) == 1
