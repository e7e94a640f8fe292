"""Figures a person would rather look at than read (pure: arrays in, figures out)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display on servers and in tests

import numpy as np
from matplotlib.figure import Figure

__all__ = ["feature_importance_figure", "residuals_figure"]


def feature_importance_figure(names: Sequence[str], importances: Sequence[float]) -> Figure:
    """Horizontal bars of feature importances, largest on top.

    Raises:
        ValueError: names and importances differ in length.
    """
    if len(names) != len(importances):
        raise ValueError(f"{len(names)} names but {len(importances)} importances")
    order = np.argsort(np.asarray(importances, dtype=float))
    figure = Figure(figsize=(7, max(3.0, 0.28 * len(names) + 1)))
    axes = figure.subplots()
    axes.barh([names[i] for i in order], [importances[i] for i in order], color="#4c72b0")
    axes.set_xlabel("importance (share of impurity reduction)")
    axes.set_title("Feature importances")
    figure.tight_layout()
    return figure


def residuals_figure(actual: Sequence[float], predicted: Sequence[float]) -> Figure:
    """Predicted against actual price, and the distribution of residuals (actual - predicted).

    Raises:
        ValueError: the sequences differ in length.
    """
    if len(actual) != len(predicted):
        raise ValueError(f"{len(actual)} actual values but {len(predicted)} predictions")
    y, p = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    figure = Figure(figsize=(11, 4.5))
    scatter, histogram = figure.subplots(1, 2)
    scatter.scatter(y, p, s=6, alpha=0.4, color="#4c72b0")
    if len(y):
        low, high = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
        scatter.plot([low, high], [low, high], color="#c44e52", linewidth=1, label="perfect")
        scatter.legend(loc="upper left")
    scatter.set_xlabel("actual price")
    scatter.set_ylabel("predicted price")
    scatter.set_title("Holdout: predicted vs actual")
    histogram.hist(y - p, bins=50, color="#55a868")
    histogram.axvline(0, color="#c44e52", linewidth=1)
    histogram.set_xlabel("residual (actual - predicted)")
    histogram.set_ylabel("listings")
    histogram.set_title("Holdout residuals")
    figure.tight_layout()
    return figure
