"""train → register → load models:/NAME@champion, on a real MLflow store and Delta table."""

from __future__ import annotations

import subprocess
from pathlib import Path

import mlflow
import mlflow.spark
import pyspark
import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import SparkSession

from infra.profile import PROFILE_METADATA_KEY, DataProfile
from infra.tracking import TrackingStore
from models.aliases import CHALLENGER, CHAMPION, model_uri
from models.listings import (
    CATEGORICAL_COLUMNS,
    FEATURE_COLUMNS,
    ID_COLUMN,
    NUMERIC_COLUMNS,
    DataSource,
    load_listings,
)
from models.pipeline import PREDICTION_COLUMN, RegressorParams
from models.training import TrainingSpec, TrainResult, TrainSettings, train
from tests.models.support import TABLE_ROWS, small_spec

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def registered_name() -> str:
    return "listing-price-training-test"


@pytest.fixture(scope="module")
def first_run(
    spark: SparkSession, tracking_store: TrackingStore, listings_table: str, registered_name: str
) -> TrainResult:
    return train(
        spark,
        tracking_store,
        TrainSettings(spec=small_spec(listings_table), model_name=registered_name),
    )


def _client(store: TrackingStore) -> MlflowClient:
    return MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)


def test_champion_from_the_registry_predicts_what_the_trained_model_predicts(
    spark: SparkSession, first_run: TrainResult, listings_table: str, registered_name: str
) -> None:
    assert first_run.model_version == "1"
    assert first_run.aliases == (CHALLENGER, CHAMPION)
    features = load_listings(spark, DataSource(listings_table)).frame.drop("price")

    loaded = mlflow.spark.load_model(model_uri(registered_name, CHAMPION))

    def predictions(model: pyspark.ml.PipelineModel) -> list[tuple[str, float]]:
        scored = model.transform(features).select(ID_COLUMN, PREDICTION_COLUMN)
        return [(r[0], r[1]) for r in scored.orderBy(ID_COLUMN).collect()]

    expected = predictions(first_run.model)
    assert len(expected) == TABLE_ROWS
    assert predictions(loaded) == expected


def test_model_is_logged_with_the_feature_signature_and_an_input_example(
    first_run: TrainResult, registered_name: str
) -> None:
    info = mlflow.models.get_model_info(model_uri(registered_name, CHAMPION))

    assert info.signature is not None
    inputs = info.signature.inputs.to_dict()
    assert [c["name"] for c in inputs] == list(FEATURE_COLUMNS)
    assert {c["name"]: c["type"] for c in inputs} == {
        c: "string" if c in CATEGORICAL_COLUMNS else "double" for c in FEATURE_COLUMNS
    }
    assert info.signature.outputs.to_dict() == [
        {"type": "double", "name": "prediction", "required": True}
    ]
    assert info.saved_input_example_info is not None
    assert info.run_id == first_run.run_id
    assert "spark" in info.flavors


def test_run_records_data_code_seed_environment_metrics_and_plots(
    first_run: TrainResult, tracking_store: TrackingStore, listings_table: str
) -> None:
    run = _client(tracking_store).get_run(first_run.run_id)
    params, tags, metrics = run.data.params, run.data.tags, run.data.metrics

    assert params["data_path"] == listings_table
    assert (params["data_format"], params["data_version"], params["data_rows"]) == (
        "delta",
        "0",
        str(TABLE_ROWS),
    )
    assert (params["seed"], params["num_trees"], params["max_depth"]) == ("11", "8", "5")
    assert (params["split_seed"], params["holdout_fraction"]) == ("42", "0.2")
    # The recorded commit is HEAD's or, if someone committed since, one of its ancestors.
    commit = tags["lineage.git_commit"]
    assert len(commit) == 40
    is_ancestor = ["git", "merge-base", "--is-ancestor", commit, "HEAD"]
    assert subprocess.run(is_ancestor, cwd=PROJECT_ROOT, check=False).returncode == 0
    assert tags["lineage.git_dirty"] in ("true", "false")
    assert tags["lineage.version.pyspark"] == pyspark.__version__
    assert tags["lineage.version.mlflow"] == mlflow.__version__
    assert {"lineage.version.delta-spark", "lineage.version.scikit-learn"} <= set(tags)
    assert len(tags["lineage.uv_lock_sha256"]) == 64
    assert set(metrics) >= {"rmse", "mae", "r2", "train_rows", "holdout_rows"}
    assert metrics == {**metrics, **first_run.metrics}
    assert metrics["train_rows"] + metrics["holdout_rows"] == TABLE_ROWS
    # A believable price relation: the model explains most of the variance.
    assert metrics["r2"] > 0.5
    artifacts = {
        a.path
        for folder in ("", "environment", "plots")
        for a in _client(tracking_store).list_artifacts(first_run.run_id, folder)
    }
    assert {
        "environment/uv.lock",
        "environment/library_versions.json",
        "plots/feature_importances.png",
        "plots/residuals.png",
        "feature_importances.json",
    } <= artifacts


def test_a_new_version_is_challenger_and_leaves_the_champion(
    spark: SparkSession,
    first_run: TrainResult,
    tracking_store: TrackingStore,
    listings_table: str,
    registered_name: str,
) -> None:
    spec: TrainingSpec = small_spec(
        listings_table, regressor=RegressorParams(num_trees=4, max_depth=3)
    )

    second = train(spark, tracking_store, TrainSettings(spec=spec, model_name=registered_name))

    assert second.model_version == "2"
    assert second.aliases == (CHALLENGER,)
    aliases = _client(tracking_store).get_registered_model(registered_name).aliases
    assert {alias: str(version) for alias, version in aliases.items()} == {
        CHAMPION: "1",
        CHALLENGER: "2",
    }


def test_the_training_data_profile_is_logged_beside_the_model_and_in_the_run(
    spark: SparkSession,
    first_run: TrainResult,
    registered_name: str,
    tracking_store: TrackingStore,
    listings_table: str,
) -> None:
    info = mlflow.models.get_model_info(model_uri(registered_name, CHAMPION))
    profile = DataProfile.from_dict(info.metadata[PROFILE_METADATA_KEY])

    assert set(profile.numeric) == set(NUMERIC_COLUMNS)
    assert set(profile.categorical) == set(CATEGORICAL_COLUMNS)
    frame = load_listings(spark, DataSource(listings_table)).frame
    for name, numeric in profile.numeric.items():
        values = [r[0] for r in frame.select(name).dropna().collect()]
        assert min(values) <= numeric.minimum <= numeric.maximum <= max(values), name
        assert set(numeric.quantiles) == {"p01", "p05", "p50", "p95", "p99"}
    for name, categorical in profile.categorical.items():
        seen = {r[0] for r in frame.select(name).dropna().distinct().collect()}
        assert categorical.complete and categorical.values <= seen, name
    logged = mlflow.artifacts.load_dict(f"runs:/{first_run.run_id}/data_profile.json")
    assert DataProfile.from_dict(logged) == profile
