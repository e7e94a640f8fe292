"""The command line: options from flags, environment or file, bad input as one `error:` line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from infra.tracking import TrackingStore
from models.cli import build_parser, build_settings, main
from models.listings import LABEL_COLUMN, generate_listings, write_listings
from models.settings import ModelsCommand, ReproduceCommand, TrainCommand, TuneCommand

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _settings(argv: Sequence[str], env: Mapping[str, str]) -> ModelsCommand:
    return build_settings(build_parser().parse_args(argv), env)


def test_options_read_the_environment_and_flags_win() -> None:
    env = {
        "MODELS_DATA_PATH": "/data/listings",
        "MODELS_NUM_TREES": "7",
        "MODELS_MAX_DEPTH": "9",
        "MODELS_NUM_TREES_GRID": "5,9",
    }

    train = _settings(["train", "--max-depth", "3"], env)
    tune = _settings(["tune", "--data-path", "/other"], env)

    assert isinstance(train, TrainCommand) and isinstance(tune, TuneCommand)
    assert (train.data_path, train.num_trees, train.max_depth) == ("/data/listings", 7, 3)
    assert (train.model_name, train.seed, train.data_format) == ("listing-price", 42, "auto")
    assert (train.tracking_uri, train.experiment, train.experiment_id) == (
        None,
        "listing-price",
        None,
    )
    assert (tune.data_path, tune.num_trees_grid, tune.max_depth_grid) == ("/other", (5, 9), (4, 8))


def test_config_file_values_count_when_neither_flag_nor_environment_sets_them(
    tmp_path: Path,
) -> None:
    config = tmp_path / "models.toml"
    config.write_text(
        'data-path = "/from/file"\n'
        "num-trees = 11\n"
        "max-depth = 4\n"
        "max_bins = 64\n"
        "num-trees-grid = [3, 6]\n"
        'max-depth-grid = "2,5"\n'
    )
    env = {"MODELS_NUM_TREES": "7"}

    train = _settings(["--config", str(config), "train", "--max-depth", "3"], env)
    tune = _settings(["tune", "--config", str(config)], {"MODELS_CONFIG": "/ignored.toml"})
    from_env = _settings(["train"], {"MODELS_CONFIG": str(config)})

    assert isinstance(train, TrainCommand) and isinstance(tune, TuneCommand)
    assert (train.data_path, train.num_trees, train.max_depth, train.max_bins) == (
        "/from/file",
        7,
        3,
        64,
    )
    assert (tune.num_trees_grid, tune.max_depth_grid) == ((3, 6), (2, 5))
    assert isinstance(from_env, TrainCommand) and from_env.num_trees == 11


def test_mlflow_variables_select_store_and_experiment_unless_ours_are_set(tmp_path: Path) -> None:
    mlflow_env = {
        "MLFLOW_TRACKING_URI": "sqlite:///x.db",
        "MLFLOW_EXPERIMENT_NAME": "from-mlflow",
        "MLFLOW_EXPERIMENT_ID": "17",
    }
    ours = {
        "MODELS_TRACKING_URI": "sqlite:///ours.db",
        "MODELS_EXPERIMENT": "ours",
        "MODELS_EXPERIMENT_ID": "3",
    }

    by_mlflow = _settings(["reproduce", "r1"], mlflow_env)
    by_ours = _settings(["reproduce", "r1"], {**mlflow_env, **ours})
    by_flags = _settings(
        ["reproduce", "r1", "--tracking-uri", "sqlite:///flag.db", "--experiment-id", "5"],
        {**mlflow_env, **ours},
    )
    embedded = _settings(["reproduce"], {"STREAMING_HOME": str(tmp_path), "MODELS_RUN_ID": "r2"})

    assert isinstance(by_mlflow, ReproduceCommand) and by_mlflow.run_id == "r1"
    assert by_mlflow.tracking_store.tracking_uri == "sqlite:///x.db"
    assert (by_mlflow.experiment, by_mlflow.experiment_id) == ("from-mlflow", "17")
    assert by_ours.tracking_store.tracking_uri == "sqlite:///ours.db"
    assert (by_ours.experiment, by_ours.experiment_id) == ("ours", "3")
    assert (by_flags.tracking_uri, by_flags.experiment_id) == ("sqlite:///flag.db", "5")
    assert isinstance(embedded, ReproduceCommand) and embedded.run_id == "r2"
    assert embedded.tracking_store.local_dir == tmp_path.resolve() / ".local" / "mlflow"
    assert embedded.project_home.spark_jars == tmp_path.resolve() / ".cache" / "spark-jars"


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
        ["train", "--data-path", str(missing), "--tracking-uri", tracking_store.tracking_uri],
        env={},
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

    code = main(
        ["train", "--data-path", path, "--tracking-uri", tracking_store.tracking_uri], env={}
    )

    assert code == 2
    assert _error_line(capsys).startswith(
        f"error: delta data at {path} (version 1) has no label column 'price'"
    )


def test_unknown_run_id_stops_with_one_line(
    tracking_store: TrackingStore, capsys: pytest.CaptureFixture[str]
) -> None:
    # The store comes from MLflow's own variable, as under `mlflow run`.
    code = main(["reproduce", "f" * 32], env={"MLFLOW_TRACKING_URI": tracking_store.tracking_uri})

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


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (
            ["train", "--data-path", "/d"],
            {"MODELS_SEED": "many"},
            "error: MODELS_SEED='many' is not a valid value: Input should be a valid integer",
        ),
        (
            ["train", "--data-path", "/d", "--regressor", "forest"],
            {},
            "error: --regressor 'forest' is not a valid value: Input should be "
            "'random-forest' or 'gbt'",
        ),
        (
            ["tune", "--data-path", "/d", "--num-trees-grid", "10,x"],
            {},
            "error: --num-trees-grid '10,x' is not a valid value: Input should be a valid integer",
        ),
        (["train"], {}, "error: --data-path is required (or set MODELS_DATA_PATH)"),
        (["reproduce"], {}, "error: RUN_ID is required (or set MODELS_RUN_ID)"),
        (
            ["train", "--data-path", "/d", "--log-level", "loud"],
            {},
            "error: --log-level 'loud' is not a log level",
        ),
        (
            ["train", "--config", "/no/such/models.toml"],
            {},
            "error: cannot read --config /no/such/models.toml",
        ),
    ],
)
def test_bad_options_stop_with_one_line_before_anything_starts(
    argv: list[str], env: dict[str, str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv, env=env) == 2
    assert _error_line(capsys).startswith(expected)
