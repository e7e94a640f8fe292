"""reproduce RUN_ID: same data version, params and seed give the same metrics."""

from __future__ import annotations

from pathlib import Path

import pyspark
import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from infra.tracking import TrackingStore
from models.errors import RunNotFoundError
from models.lineage import CodeVersion, code_version, environment_differences, environment_tags
from models.listings import DataSource, generate_listings, load_listings, write_listings
from models.reproduction import (
    MetricComparison,
    ReproduceSettings,
    ReproductionReport,
    data_differences,
    reproduce,
)
from models.training import TrainSettings, train
from tests.models.support import small_spec


def test_reproduce_after_rows_and_a_column_were_appended(
    spark: SparkSession, tracking_store: TrackingStore, tmp_path: Path, model_name: str
) -> None:
    path = str(tmp_path / "listings")
    write_listings(spark, generate_listings(1500, seed=21), path)
    recorded = train(
        spark, tracking_store, TrainSettings(spec=small_spec(path), model_name=model_name)
    )
    # The table evolves: new rows, and a new column (schema evolution needs mergeSchema).
    new_rows = spark.createDataFrame(generate_listings(400, seed=22, start_id=1501))
    new_rows = new_rows.withColumn("host_response_rate", F.lit(0.9))
    new_rows.write.format("delta").mode("append").option("mergeSchema", "true").save(path)
    assert load_listings(spark, DataSource(path)).version == 1
    assert "host_response_rate" in spark.read.format("delta").load(path).columns

    report = reproduce(spark, tracking_store, ReproduceSettings(run_id=recorded.run_id))

    assert report.matched, report.lines()
    assert report.data_version == recorded.data_version == 0
    assert [(m.name, m.recorded) for m in report.metrics] == [
        (name, recorded.metrics[name]) for name in ("rmse", "mae", "r2")
    ]
    assert all(m.recorded == m.reproduced for m in report.metrics)
    assert not [d for d in report.differences if d.startswith("data")]
    logged = MlflowClient(tracking_store.tracking_uri).get_run(str(report.reproduction_run_id))
    assert logged.data.tags["reproduction.of_run"] == recorded.run_id
    assert logged.data.tags["reproduction.matched"] == "true"

    # A run whose record no longer matches: another pyspark, and a metric that differs.
    client = MlflowClient(tracking_store.tracking_uri)
    client.set_tag(recorded.run_id, "lineage.version.pyspark", "4.1.1")
    client.log_metric(recorded.run_id, "rmse", recorded.metrics["rmse"] + 1.0)

    report = reproduce(
        spark, tracking_store, ReproduceSettings(run_id=recorded.run_id, log_run=False)
    )

    assert not report.matched
    assert f"library pyspark: 4.1.1 -> {pyspark.__version__}" in report.differences
    assert report.reproduction_run_id is None
    assert report.lines()[0].startswith(f"run {recorded.run_id}: metrics DIFFER")


def test_unknown_run_id_is_named(spark: SparkSession, tracking_store: TrackingStore) -> None:
    with pytest.raises(RunNotFoundError, match="run '0123456789abcdef0123456789abcdef' not found"):
        reproduce(
            spark, tracking_store, ReproduceSettings(run_id="0123456789abcdef0123456789abcdef")
        )


def test_data_differences_name_rows_and_content() -> None:
    recorded = {"data_path": "/t", "data_version": "3", "data_rows": "10", "data_fingerprint": "99"}

    assert data_differences(recorded, 10, "99") == []
    assert data_differences(recorded, 12, "98") == [
        "data /t version 3: rows 10 -> 12",
        "data /t version 3: content fingerprint 99 -> 98",
    ]


def test_environment_differences_name_code_lock_file_and_libraries() -> None:
    before = environment_tags(
        CodeVersion("aaa", False), {"pyspark": "4.1.0", "mlflow": "3.1"}, "1" * 64
    )
    now = environment_tags(
        CodeVersion("bbb", True, "f" * 64), {"pyspark": "4.2.0", "mlflow": "3.1"}, "2" * 64
    )

    assert environment_differences(before, before) == []
    assert environment_differences(before, now) == [
        "code version (git commit): aaa -> bbb",
        "uncommitted code changes: false -> true",
        "uncommitted changes under models/: clean -> ffffffffffff",
        "lock file uv.lock changed: 111111111111 -> 222222222222",
        "library pyspark: 4.1.0 -> 4.2.0",
    ]


def test_code_version_reads_git_or_says_unknown(tmp_path: Path) -> None:
    assert code_version(tmp_path) == CodeVersion("unknown", False, "unknown")
    assert len(code_version().commit) == 40


def test_report_lines_say_what_matched() -> None:
    report = ReproductionReport(
        run_id="r1",
        matched=False,
        metrics=(MetricComparison("rmse", 1.5, 1.25),),
        differences=(),
        data_path="/t",
        data_version=0,
        reproduction_run_id=None,
    )

    assert report.lines() == [
        "run r1: metrics DIFFER (data /t version 0)",
        "  rmse: recorded 1.5, reproduced 1.25",
        "no recorded difference explains it (data, code and libraries are equal)",
    ]
    assert MetricComparison("rmse", 1.0, 1.0 + 1e-12).matches(1e-9)
    assert not MetricComparison("rmse", 1.0, 1.0 + 1e-12).matches(0.0)
    assert not MetricComparison("rmse", None, 1.0).matches(0.5)
