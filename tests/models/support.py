"""Helpers shared by the model lifecycle tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.listings import DataSource
from models.pipeline import RegressorParams
from models.training import TrainingSpec

TABLE_ROWS = 2500
SMALL_FOREST = RegressorParams(num_trees=8, max_depth=5)


def small_spec(path: str | Path, **overrides: Any) -> TrainingSpec:
    """A quick training spec: a small forest on two partitions."""
    values: dict[str, Any] = {
        "source": DataSource(str(path)),
        "regressor": SMALL_FOREST,
        "seed": 11,
        "partitions": 2,
    }
    values.update(overrides)
    return TrainingSpec(**values)
