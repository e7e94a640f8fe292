"""The command line: options from flags or environment, bad input as one `error:` line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from infra.tracking import TrackingStore
from models.cli import build_parser, main
from models.listings import LABEL_COLUMN, generate_listings, write_listings

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_options_read_the_environment_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELS_DATA_PATH", "/data/listings")
    monkeypatch.setenv("MODELS_NUM_TREES", "7")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///x.db")
    monkeypatch.setenv("MODELS_NUM_TREES_GRID", "5,9")

    train = build_parser().parse_args(["train", "--max-depth", "3"])
    tune = build_parser().parse_args(["tune", "--data-path", "/other"])

    assert (train.data_path, train.num_trees, train.max_depth) == ("/data/listings", 7, 3)
    assert train.tracking_uri == "sqlite:///x.db"
    assert (train.model_name, train.seed, train.data_format) == ("listing-price", 42, "auto")
    assert (tune.data_path, tune.num_trees_grid, tune.max_depth_grid) == ("/other", (5, 9), (4, 8))


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one `error:` line; MLflow may log its own INFO lines when it creates a store."""
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, lines
    assert lines[-1] == errors[0]
    assert not [line for line in lines if "Traceback" in line]
    return errors[0]


def test_unknown_data_path_stops_with_one_line(
    tracking_store: TrackingStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-table"

    code = main(
        ["train", "--data-path", str(missing), "--tracking-uri", tracking_store.tracking_uri]
    )

    assert code == 2
    assert _error_line(capsys).startswith(f"error: data path {missing} does not exist")


def test_table_without_the_label_stops_with_one_line(
    spark: SparkSession,
    tracking_store: TrackingStore,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = str(tmp_path / "unlabelled")
    write_listings(spark, generate_listings(20, seed=1), path)
    unlabelled = spark.read.format("delta").load(path).drop(LABEL_COLUMN).withColumn("x", F.lit(1))
    unlabelled.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)

    code = main(["train", "--data-path", path, "--tracking-uri", tracking_store.tracking_uri])

    assert code == 2
    assert _error_line(capsys).startswith(
        f"error: delta data at {path} (version 1) has no label column 'price'"
    )


def test_unknown_run_id_stops_with_one_line(
    tracking_store: TrackingStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["reproduce", "f" * 32, "--tracking-uri", tracking_store.tracking_uri])

    assert code == 2
    assert _error_line(capsys).startswith(
        f"error: run '{'f' * 32}' not found in {tracking_store.tracking_uri}"
    )


def test_python_dash_m_models_reports_bad_input_on_one_stderr_line(
    tracking_store: TrackingStore, tmp_path: Path
) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_store.tracking_uri}
    env["MODELS_DATA_PATH"] = str(tmp_path / "nothing-here")

    done = subprocess.run(
        [sys.executable, "-m", "models", "train"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: data path {tmp_path / 'nothing-here'} does not exist: give a Delta table, a "
        "Parquet or CSV path (--data-path / MODELS_DATA_PATH), or create one with "
        "`python -m models generate-data`"
    ]
