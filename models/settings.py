"""One frozen, typed settings object per command of ``python -m models``.

Built once at the edge (:mod:`models.cli`) from flags, ``MODELS_*`` environment variables and
an optional TOML file (see :mod:`infra.settings`), then converted into the domain's settings
(:class:`models.training.TrainSettings` and the like).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from infra.settings import TrackingCommand
from models.aliases import DEFAULT_MODEL_NAME
from models.experiments import DEFAULT_EXPERIMENT_NAME
from models.training import DEFAULT_SPLIT_SEED

__all__ = [
    "DEFAULT_GENERATED_ROWS",
    "GenerateDataCommand",
    "ModelsCommand",
    "PromoteCommand",
    "ReproduceCommand",
    "TrainCommand",
    "TrainingCommand",
    "TuneCommand",
]

DEFAULT_GENERATED_ROWS = 5000

# A comma-separated list of integers (``10,30``): not JSON, so pydantic-settings must not decode it.
IntList = Annotated[tuple[int, ...], NoDecode]


def _split_int_list(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.strip("[]() ").split(",") if part.strip())
    return value


class ModelsCommand(TrackingCommand):
    """Options every ``python -m models`` command has."""

    model_config = SettingsConfigDict(env_prefix="MODELS_")

    experiment: str = Field(
        DEFAULT_EXPERIMENT_NAME,
        description="MLflow experiment (MLFLOW_EXPERIMENT_NAME is read too)",
    )
    experiment_id: str | None = Field(
        None,
        description="existing MLflow experiment id (set by `mlflow run`); overrides --experiment "
        "(MLFLOW_EXPERIMENT_ID is read too)",
    )
    model_name: str = Field(DEFAULT_MODEL_NAME, description="registered model name")
    master: str | None = Field(
        None, description="Spark master (default: local[*]; ignored under spark-submit)"
    )


class _DataOptions(ModelsCommand):
    """Where the data is read from."""

    data_format: Literal["auto", "delta", "parquet", "csv"] = Field(
        "auto", description="data format: auto, delta, parquet or csv"
    )
    data_version: int | None = Field(
        None, description="Delta version to read (default: latest, then pinned)"
    )


class TrainingCommand(_DataOptions):
    """Options of a command that fits a model: ``train`` and ``tune``."""

    data_path: str = Field(description="training data: a Delta table, Parquet or CSV path")
    seed: int = Field(42, description="seed of the regressor")
    split_seed: int = Field(
        DEFAULT_SPLIT_SEED,
        description="salt of the holdout split (keep it equal across runs you want to compare)",
    )
    holdout_fraction: float = Field(0.2, description="share of rows held out for metrics")
    partitions: int = Field(4, description="partitions the data is laid out in before fitting")
    regressor: Literal["random-forest", "gbt"] = Field(
        "random-forest", description="tree regressor: random-forest or gbt"
    )
    max_bins: int = Field(32, description="bins for continuous features")
    min_instances_per_node: int = Field(1, description="minimum rows per tree node")


class TrainCommand(TrainingCommand):
    """``train``: train, log and register the MLlib model."""

    num_trees: int = Field(20, description="trees (or boosting iterations)")
    max_depth: int = Field(6, description="maximum tree depth")


class TuneCommand(TrainingCommand):
    """``tune``: grid-search with Spark ML CrossValidator and scikit-learn on joblibspark."""

    num_trees_grid: IntList = Field((10, 30), description="trees to try, comma-separated")
    max_depth_grid: IntList = Field((4, 8), description="depths to try, comma-separated")
    folds: int = Field(3, description="cross-validation folds")
    parallelism: int = Field(2, description="trials fitted at once")
    sklearn_model_name: str | None = Field(
        None,
        description="registered name of the scikit-learn model (default: <model-name>-sklearn)",
    )

    @field_validator("num_trees_grid", "max_depth_grid", mode="before")
    @classmethod
    def _int_list(cls, value: Any) -> Any:
        return _split_int_list(value)

    @field_validator("num_trees_grid", "max_depth_grid")
    @classmethod
    def _not_empty(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("is empty: give comma-separated integers, e.g. 10,30")
        return value


class PromoteCommand(_DataOptions):
    """``promote``: move champion to the challenger if it is better on the pinned holdout."""

    data_path: str | None = Field(
        None,
        description="holdout data (default: the data and Delta version the challenger's run read)",
    )
    min_improvement: float = Field(0.0, description="relative RMSE improvement needed, e.g. 0.02")


class ReproduceCommand(ModelsCommand):
    """``reproduce``: retrain a run from its record and compare metrics."""

    run_id: str = Field(
        description="the run to retrain",
        json_schema_extra={"positional": True, "flag": "RUN_ID"},
    )
    tolerance: float = Field(0.0, description="relative metric difference accepted")


class GenerateDataCommand(ModelsCommand):
    """``generate-data``: write synthetic San Francisco listings to a Delta table."""

    data_path: str = Field(description="Delta table to write")
    rows: int = Field(DEFAULT_GENERATED_ROWS, ge=0, description="rows to generate")
    seed: int = Field(42, description="generator seed")
    mode: Literal["overwrite", "append"] = Field("overwrite", description="overwrite or append")
    start_id: int | None = Field(
        None, description="first id (default: 1, or after the table's last id when appending)"
    )
