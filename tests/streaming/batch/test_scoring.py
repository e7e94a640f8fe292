"""``python -m streaming batch``: the stream's scoring over a table, into a Delta table."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession

from infra.tracking import TrackingStore
from streaming.cli import main
from tests.streaming.conftest import FEATURES, Registry, training_frame


def error_lines(stderr: str) -> list[str]:
    """What the command reports (MLflow's own warnings may come before it on stderr)."""
    assert "Traceback" not in stderr
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def batch_argv(source: Path, registry: Registry, output: Path) -> list[str]:
    model_uri = f"models:/{registry.name}@champion"
    return [
        "batch",
        "--input",
        str(source),
        "--model-uri",
        model_uri,
        "--predictions-table",
        str(output),
    ]


def test_a_delta_table_is_scored_like_the_model_scores_it(
    spark: SparkSession,
    registry: Registry,
    base_model: PipelineModel,
    tracking_store: TrackingStore,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    version = registry.register_spark(base_model, training_frame(spark))
    listings = training_frame(spark).selectExpr("uuid() AS event_id", "*")  # extra columns are fine
    listings.write.format("delta").save(str(tmp_path / "listings"))
    env = {"MLFLOW_TRACKING_URI": tracking_store.tracking_uri}

    argv = batch_argv(tmp_path / "listings", registry, tmp_path / "scored")
    assert main(argv, env) == 0

    assert f"{listings.count()} predictions written" in capsys.readouterr().out
    scored = spark.read.format("delta").load(str(tmp_path / "scored"))
    expected = {
        r.event_id: r.prediction
        for r in base_model.transform(
            spark.read.format("delta").load(str(tmp_path / "listings"))
        ).collect()
    }
    assert {r.event_id: r.prediction for r in scored.collect()} == pytest.approx(
        expected, rel=1e-12
    )
    assert {(r.model_name, r.model_version) for r in scored.collect()} == {(registry.name, version)}


def test_a_table_without_the_models_columns_stops_with_one_line(
    spark: SparkSession,
    registry: Registry,
    base_model: PipelineModel,
    tracking_store: TrackingStore,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    training_frame(spark).drop(FEATURES[1]).write.parquet(str(tmp_path / "narrow"))
    argv = batch_argv(tmp_path / "narrow", registry, tmp_path / "scored")

    assert main(argv, {"MLFLOW_TRACKING_URI": tracking_store.tracking_uri}) == 2
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and "accommodates" in errors[0]


def test_an_unknown_input_path_stops_with_one_line(
    tracking_store: TrackingStore,
    registry: Registry,
    spark: SparkSession,
    base_model: PipelineModel,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    argv = batch_argv(tmp_path / "nowhere", registry, tmp_path / "scored")
    assert main(argv, {"MLFLOW_TRACKING_URI": tracking_store.tracking_uri}) == 2
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and f"cannot read --input {tmp_path / 'nowhere'}" in errors[0]


def test_a_rerun_is_idempotent_per_input_version_and_model_version(
    spark: SparkSession,
    registry: Registry,
    base_model: PipelineModel,
    tracking_store: TrackingStore,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    source = str(tmp_path / "listings")
    training_frame(spark).write.format("delta").save(source)
    env = {"MLFLOW_TRACKING_URI": tracking_store.tracking_uri}
    argv = batch_argv(tmp_path / "listings", registry, tmp_path / "scored")
    rows = training_frame(spark).count()

    def scored() -> list[tuple[int, str]]:
        table = spark.read.format("delta").load(str(tmp_path / "scored"))
        return [(r.batch_id, r.model_version) for r in table.collect()]

    assert main(argv, env) == 0
    assert main(argv, env) == 0  # same input version, same model: nothing written
    assert "already scored" in capsys.readouterr().out
    assert sorted(set(scored())) == [(0, "1")] and len(scored()) == rows

    training_frame(spark).limit(4).write.format("delta").mode("append").save(source)
    assert main(argv, env) == 0  # a new input version is scored in full
    assert sorted(set(scored())) == [(0, "1"), (1, "1")] and len(scored()) == 2 * rows + 4

    registry.register_spark(base_model, training_frame(spark), alias="champion")
    assert main(argv, env) == 0  # another model version scores the same input version
    assert sorted(set(scored())) == [(0, "1"), (1, "1"), (1, "2")]
    assert len(scored()) == 3 * rows + 8
