"""The MLproject file: entry points and the commands they run."""

from __future__ import annotations

from pathlib import Path

from mlflow.projects._project_spec import load_project

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
