"""The scikit-learn price model served through MLflow pyfunc (pure: builds the estimator)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from models.listings import CATEGORICAL_COLUMNS, NUMERIC_COLUMNS

__all__ = ["MISSING_CATEGORY", "SKOPS_TRUSTED_TYPES", "build_sklearn_pipeline"]

MISSING_CATEGORY = "__missing__"
# MLflow saves scikit-learn models with skops, which loads only types it is told to trust.
# Reviewed: the forest's node arrays and numpy dtypes; nothing that runs code on load.
SKOPS_TRUSTED_TYPES = ("numpy.dtype", "sklearn.tree._tree.Tree")


def build_sklearn_pipeline(
    seed: int,
    categorical_columns: Sequence[str] = CATEGORICAL_COLUMNS,
    numeric_columns: Sequence[str] = NUMERIC_COLUMNS,
    n_estimators: int = 100,
    max_depth: int | None = None,
) -> Pipeline:
    """Build the unfitted estimator: impute, one-hot encode, random forest.

    It takes a pandas frame with the feature columns and tolerates ``None``/``NaN`` anywhere
    and categories never seen in training (encoded as all zeros).

    Args:
        seed: ``random_state`` of the forest.
        categorical_columns: String features.
        numeric_columns: Double features.
        n_estimators: Trees in the forest.
        max_depth: Maximum tree depth; ``None`` grows until leaves are pure.

    Returns:
        An unfitted :class:`sklearn.pipeline.Pipeline` whose steps are ``features`` and
        ``regressor`` (grid-search parameters are ``regressor__<name>``).
    """
    categorical = Pipeline(
        [
            # None and NaN both count as missing (pandas reads both from nullable columns).
            ("impute_nan", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
            (
                "impute_none",
                SimpleImputer(
                    missing_values=None, strategy="constant", fill_value=MISSING_CATEGORY
                ),
            ),
            ("encode", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    features = ColumnTransformer(
        [
            (
                "numeric",
                SimpleImputer(strategy="median", missing_values=np.nan),
                list(numeric_columns),
            ),
            ("categorical", categorical, list(categorical_columns)),
        ]
    )
    regressor = RandomForestRegressor(
        n_estimators=n_estimators, max_depth=max_depth, random_state=seed, n_jobs=1
    )
    return Pipeline([("features", features), ("regressor", regressor)])
