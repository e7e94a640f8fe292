"""Profile the training rows so the service can tell events no training row resembles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import mlflow
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from infra.profile import CategoricalProfile, DataProfile, NumericProfile

__all__ = ["MAX_CATEGORIES", "QUANTILES", "log_profile", "profile_data"]

QUANTILES: Final = {"p01": 0.01, "p05": 0.05, "p50": 0.5, "p95": 0.95, "p99": 0.99}
# A categorical with more distinct values than this is profiled without its value set: no
# value of it is then called unseen.
MAX_CATEGORIES: Final = 1000
PROFILE_ARTIFACT: Final = "data_profile.json"


def _finite(column: str) -> Column:
    value = F.col(column).cast("double")
    return F.when(~F.isnan(value) & (F.abs(value) != F.lit(float("inf"))), value)


def profile_data(
    frame: DataFrame, numeric: Sequence[str], categorical: Sequence[str]
) -> DataProfile:
    """Per numeric feature the finite range, quantiles and null rate; per categorical feature
    the values seen and null rate. One aggregation over ``frame``.

    Returns:
        The profile; a numeric feature with no finite value gets an infinite range (never
        flagged).
    """
    aggregates: list[Column] = [F.count(F.lit(1)).alias("_rows")]
    for i, name in enumerate(numeric):
        finite = _finite(name)
        aggregates += [
            F.min(finite).alias(f"n{i}_min"),
            F.max(finite).alias(f"n{i}_max"),
            F.percentile_approx(finite, list(QUANTILES.values()), 1000).alias(f"n{i}_q"),
            F.count(finite).alias(f"n{i}_count"),
        ]
    for i, name in enumerate(categorical):
        aggregates += [
            F.slice(F.array_sort(F.collect_set(F.col(name))), 1, MAX_CATEGORIES + 1).alias(
                f"c{i}_values"
            ),
            F.count(F.col(name)).alias(f"c{i}_count"),
        ]
    row = frame.agg(*aggregates).first()
    assert row is not None
    rows = int(row["_rows"])

    def null_rate(count: int) -> float:
        return 0.0 if rows == 0 else round(1.0 - count / rows, 6)

    numeric_profiles = {}
    for i, name in enumerate(numeric):
        low, high = row[f"n{i}_min"], row[f"n{i}_max"]
        quantiles = row[f"n{i}_q"] or []
        numeric_profiles[name] = NumericProfile(
            minimum=float("-inf") if low is None else float(low),
            maximum=float("inf") if high is None else float(high),
            quantiles=dict(zip(QUANTILES, (float(q) for q in quantiles), strict=False)),
            null_rate=null_rate(int(row[f"n{i}_count"])),
        )
    categorical_profiles = {}
    for i, name in enumerate(categorical):
        values = [str(v) for v in row[f"c{i}_values"] or []]
        complete = len(values) <= MAX_CATEGORIES
        categorical_profiles[name] = CategoricalProfile(
            values=frozenset(values[:MAX_CATEGORIES]),
            complete=complete,
            null_rate=null_rate(int(row[f"c{i}_count"])),
        )
    return DataProfile(rows=rows, numeric=numeric_profiles, categorical=categorical_profiles)


def log_profile(profile: DataProfile) -> None:
    """Log the profile to the active run as ``data_profile.json`` (the model carries its own
    copy in its MLmodel metadata)."""
    mlflow.log_dict(profile.to_dict(), PROFILE_ARTIFACT)
