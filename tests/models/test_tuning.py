"""tune: trials of both backends are child runs; the scikit-learn best is registered and serves."""

from __future__ import annotations

import math

import mlflow
import mlflow.pyfunc
import numpy as np
from mlflow.tracking import MlflowClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from infra.tracking import TrackingStore
from models.aliases import CHALLENGER, CHAMPION, model_uri, sklearn_model_name
from models.listings import FEATURE_COLUMNS, NUMERIC_COLUMNS, DataSource, load_listings
from models.reproduction import ReproduceSettings, reproduce
from models.tuning import TuneSettings, tune
from tests.models.support import small_spec


def test_tune_logs_trials_of_both_backends_and_registers_a_servable_sklearn_model(
    spark: SparkSession, tracking_store: TrackingStore, listings_table: str, model_name: str
) -> None:
    settings = TuneSettings(
        spec=small_spec(listings_table),
        num_trees_grid=(3, 6),
        max_depth_grid=(4,),
        folds=2,
        parallelism=2,
        model_name=model_name,
    )

    result = tune(spark, tracking_store, settings)

    client = MlflowClient(tracking_store.tracking_uri, tracking_store.tracking_uri)
    experiment_id = client.get_run(result.run_id).info.experiment_id

    def children(run_id: str) -> dict[str, str]:
        runs = client.search_runs(
            [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'"
        )
        return {run.info.run_id: run.data.tags.get("models.backend", "") for run in runs}

    assert children(result.run_id) == {
        result.spark.run_id: "spark-ml",
        result.sklearn.run_id: "scikit-learn",
    }
    for backend, tag in ((result.spark, "spark-ml"), (result.sklearn, "scikit-learn")):
        trials = children(backend.run_id)
        assert set(trials) == set(backend.trial_run_ids)
        assert list(trials.values()) == [tag, tag]
        assert sorted(client.get_run(t).data.params["num_trees"] for t in trials) == ["3", "6"]
        assert all("cv_rmse" in client.get_run(t).data.metrics for t in trials)
        assert backend.best_params["max_depth"] == 4
        assert backend.model_version == "1"
        assert backend.aliases == (CHALLENGER, CHAMPION)
    assert result.sklearn.model_name == sklearn_model_name(model_name)

    # The registered scikit-learn model loads, with the MLlib model's input signature...
    uri = model_uri(sklearn_model_name(model_name), CHAMPION)
    sklearn_info = mlflow.models.get_model_info(uri)
    spark_info = mlflow.models.get_model_info(model_uri(model_name, CHAMPION))
    assert sklearn_info.signature.inputs == spark_info.signature.inputs
    assert sklearn_info.signature.outputs == spark_info.signature.outputs
    model = mlflow.pyfunc.load_model(uri)
    # ...and scores rows with gaps and unseen categories, through pandas and through Spark.
    features = (
        load_listings(spark, DataSource(listings_table)).frame.select(*FEATURE_COLUMNS).limit(20)
    )
    rows = features.toPandas()
    rows.loc[0, "neighbourhood_cleansed"] = "Atlantis"
    rows.loc[1, "room_type"] = None
    rows.loc[2, list(NUMERIC_COLUMNS)] = np.nan
    assert all(math.isfinite(p) for p in model.predict(rows))
    predict = mlflow.pyfunc.spark_udf(spark, uri, result_type="double", env_manager="local")
    scored = features.withColumn("prediction", predict(F.struct(*FEATURE_COLUMNS))).collect()
    assert len(scored) == 20
    assert all(r.prediction is not None and math.isfinite(r.prediction) for r in scored)

    # The spark-ml child run is a complete training record: it reproduces.
    report = reproduce(
        spark, tracking_store, ReproduceSettings(run_id=result.spark.run_id, log_run=False)
    )
    assert report.matched, report.lines()
