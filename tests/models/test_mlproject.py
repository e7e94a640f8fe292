"""The MLproject file: entry points and the commands they run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mlflow.projects._project_spec import load_project
from mlflow.tracking import MlflowClient

from infra.tracking import TrackingStore

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_mlproject_runs_the_models_commands() -> None:
    project = load_project(str(PROJECT_ROOT))

    assert {"train", "tune", "promote", "reproduce", "generate_data"} <= set(project._entry_points)
    train = project.get_entry_point("train").compute_command({"data_path": "/d", "seed": "7"}, None)
    assert train.startswith("python -m models train --data-path /d --model-name listing-price")
    assert "--seed 7" in train
    promote = project.get_entry_point("promote").compute_command({"min_improvement": "0.05"}, None)
    assert promote == "python -m models promote --model-name listing-price --min-improvement 0.05"
    tune = project.get_entry_point("tune").compute_command({}, None)
    assert "--num-trees-grid 10,30 --max-depth-grid 4,8" in tune


def test_mlflow_run_of_the_train_entry_point_registers_a_model(
    listings_table: str, tracking_store: TrackingStore, model_name: str, tmp_path: Path
) -> None:
    interpreter = Path(sys.executable)
    env = {
        **os.environ,
        "PATH": f"{interpreter.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": tracking_store.tracking_uri,
        "PYSPARK_PYTHON": str(interpreter),
    }
    command = [
        str(interpreter), "-m", "mlflow", "run", str(PROJECT_ROOT), "-e", "train",
        "--env-manager", "local", "--experiment-name", "mlproject-test",
        "-P", f"data_path={listings_table}", "-P", "num_trees=5", "-P", f"model_name={model_name}",
    ]  # fmt: skip
    result = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]

    client = MlflowClient(tracking_uri=tracking_store.tracking_uri)
    champion = client.get_model_version_by_alias(model_name, "champion")
    run = client.get_run(str(champion.run_id))
    assert run.data.tags["mlflow.project.entryPoint"] == "train"
    assert run.data.params["num_trees"] == "5"
    assert run.data.metrics["rmse"] > 0
