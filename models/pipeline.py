"""The MLlib Pipeline that predicts a listing's price (pure: builds stages, touches no data)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from pyspark.ml import Pipeline
from pyspark.ml.feature import Imputer, StringIndexer, VectorAssembler
from pyspark.ml.regression import GBTRegressor, RandomForestRegressor

from models.errors import SettingsError
from models.listings import CATEGORICAL_COLUMNS, LABEL_COLUMN, NUMERIC_COLUMNS

__all__ = [
    "FEATURES_VECTOR_COLUMN",
    "PREDICTION_COLUMN",
    "RegressorKind",
    "RegressorParams",
    "build_pipeline",
    "effective_max_bins",
    "feature_vector_names",
]

PREDICTION_COLUMN: Final = "prediction"
FEATURES_VECTOR_COLUMN: Final = "features_vector"
RegressorKind = Literal["random-forest", "gbt"]


@dataclass(frozen=True)
class RegressorParams:
    """Hyper-parameters of the tree regressor.

    Attributes:
        kind: ``random-forest`` or ``gbt`` (gradient-boosted trees).
        num_trees: Trees in the forest, or boosting iterations.
        max_depth: Maximum depth of each tree.
        max_bins: Bins for continuous features; raised when a categorical has more values.
        min_instances_per_node: Minimum rows in each child after a split.
    """

    kind: RegressorKind = "random-forest"
    num_trees: int = 20
    max_depth: int = 6
    max_bins: int = 32
    min_instances_per_node: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ("random-forest", "gbt"):
            raise SettingsError(f"regressor {self.kind!r} is not random-forest or gbt")
        if self.num_trees < 1 or self.max_depth < 0 or self.max_bins < 2:
            raise SettingsError(
                "num_trees must be >= 1, max_depth >= 0 and max_bins >= 2, got "
                f"{self.num_trees}, {self.max_depth}, {self.max_bins}"
            )


def _indexed(column: str) -> str:
    return f"{column}__index"


def _imputed(column: str) -> str:
    return f"{column}__imputed"


def feature_vector_names(
    categorical_columns: Sequence[str] = CATEGORICAL_COLUMNS,
    numeric_columns: Sequence[str] = NUMERIC_COLUMNS,
) -> list[str]:
    """Source column of each slot of the features vector, in order."""
    return [*categorical_columns, *numeric_columns]


def effective_max_bins(requested: int, category_counts: Mapping[str, int]) -> int:
    """``max_bins`` large enough for every categorical.

    Trees split categoricals natively and need one bin per value; indexing keeps one extra
    value for unseen categories and nulls.

    Args:
        requested: The asked-for number of bins.
        category_counts: Distinct non-null values per categorical column in the train split.

    Returns:
        ``max(requested, largest count + 1)``.
    """
    return max([requested, *(count + 1 for count in category_counts.values())])


def build_pipeline(
    params: RegressorParams,
    seed: int,
    categorical_columns: Sequence[str] = CATEGORICAL_COLUMNS,
    numeric_columns: Sequence[str] = NUMERIC_COLUMNS,
    label_column: str = LABEL_COLUMN,
    max_bins: int | None = None,
) -> Pipeline:
    """Build the unfitted pipeline: index categoricals, impute numerics, assemble, regress.

    The fitted model reads the feature columns only (not the label) and tolerates nulls and
    unseen categories: numerics get the train median, unknown or null categories their own
    index. Its output column is ``prediction``.

    Args:
        params: Regressor hyper-parameters.
        seed: Seed of the regressor (bootstrap samples and feature subsets).
        categorical_columns: String feature columns.
        numeric_columns: Double feature columns.
        label_column: The column the regressor learns.
        max_bins: Overrides ``params.max_bins`` (see :func:`effective_max_bins`).

    Returns:
        An unfitted :class:`pyspark.ml.Pipeline`.
    """
    stages: list = []
    if categorical_columns:
        stages.append(
            StringIndexer(
                inputCols=list(categorical_columns),
                outputCols=[_indexed(c) for c in categorical_columns],
                handleInvalid="keep",
                stringOrderType="frequencyDesc",
            )
        )
    if numeric_columns:
        stages.append(
            Imputer(
                inputCols=list(numeric_columns),
                outputCols=[_imputed(c) for c in numeric_columns],
                strategy="median",
            )
        )
    stages.append(
        VectorAssembler(
            inputCols=[_indexed(c) for c in categorical_columns]
            + [_imputed(c) for c in numeric_columns],
            outputCol=FEATURES_VECTOR_COLUMN,
            handleInvalid="keep",
        )
    )
    bins = max_bins if max_bins is not None else params.max_bins
    regressor: GBTRegressor | RandomForestRegressor
    if params.kind == "gbt":
        regressor = GBTRegressor(maxIter=params.num_trees)
    else:
        regressor = RandomForestRegressor(numTrees=params.num_trees)
    regressor.setParams(
        featuresCol=FEATURES_VECTOR_COLUMN,
        labelCol=label_column,
        predictionCol=PREDICTION_COLUMN,
        maxDepth=params.max_depth,
        maxBins=bins,
        minInstancesPerNode=params.min_instances_per_node,
        seed=seed,
    )
    stages.append(regressor)
    return Pipeline(stages=stages)
