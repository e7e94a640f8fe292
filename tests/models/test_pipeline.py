"""The MLlib and scikit-learn pipelines: stages, and tolerance to gaps and new categories."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pyspark.ml.feature import Imputer, StringIndexer, VectorAssembler
from pyspark.ml.regression import GBTRegressor, RandomForestRegressor
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from models.errors import SettingsError
from models.listings import (
    CATEGORICAL_COLUMNS,
    FEATURE_COLUMNS,
    LABEL_COLUMN,
    NUMERIC_COLUMNS,
    conform_listings,
    generate_listings,
    listings_schema,
)
from models.pipeline import (
    PREDICTION_COLUMN,
    RegressorParams,
    build_pipeline,
    effective_max_bins,
    feature_vector_names,
)
from models.sklearn_pipeline import build_sklearn_pipeline


# MLlib stages are JVM objects: building them needs a running SparkContext.
@pytest.mark.usefixtures("spark")
def test_pipeline_indexes_imputes_assembles_and_regresses() -> None:
    pipeline = build_pipeline(RegressorParams(num_trees=7, max_depth=3), seed=5, max_bins=40)

    indexer, imputer, assembler, forest = pipeline.getStages()
    assert isinstance(indexer, StringIndexer)
    assert indexer.getInputCols() == list(CATEGORICAL_COLUMNS)
    assert indexer.getHandleInvalid() == "keep"
    assert isinstance(imputer, Imputer)
    assert imputer.getInputCols() == list(NUMERIC_COLUMNS)
    assert imputer.getStrategy() == "median"
    assert isinstance(assembler, VectorAssembler)
    assert assembler.getHandleInvalid() == "keep"
    assert isinstance(forest, RandomForestRegressor)
    assert (forest.getNumTrees(), forest.getMaxDepth(), forest.getMaxBins(), forest.getSeed()) == (
        7,
        3,
        40,
        5,
    )
    assert forest.getLabelCol() == LABEL_COLUMN
    assert forest.getPredictionCol() == PREDICTION_COLUMN == "prediction"
    assert feature_vector_names() == [*CATEGORICAL_COLUMNS, *NUMERIC_COLUMNS]


@pytest.mark.usefixtures("spark")
def test_gbt_uses_trees_as_iterations() -> None:
    gbt = build_pipeline(RegressorParams(kind="gbt", num_trees=4), seed=1).getStages()[-1]

    assert isinstance(gbt, GBTRegressor)
    assert gbt.getMaxIter() == 4


def test_regressor_params_are_validated() -> None:
    with pytest.raises(SettingsError, match="is not random-forest or gbt"):
        RegressorParams(kind="xgboost")  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="num_trees must be >= 1"):
        RegressorParams(num_trees=0)


def test_max_bins_grow_with_the_widest_categorical() -> None:
    assert effective_max_bins(32, {"a": 3, "b": 10}) == 32
    assert effective_max_bins(32, {"a": 3, "neighbourhood": 36}) == 37
    assert effective_max_bins(16, {}) == 16


def _awkward_rows() -> pd.DataFrame:
    rows = generate_listings(4, seed=8)[list(FEATURE_COLUMNS)]
    rows.loc[0, "room_type"] = None
    rows.loc[1, "neighbourhood_cleansed"] = "Atlantis"
    rows.loc[2, ["bedrooms", "accommodates", "review_scores_rating"]] = np.nan
    rows.loc[3, list(NUMERIC_COLUMNS)] = np.nan
    rows.loc[3, list(CATEGORICAL_COLUMNS)] = None
    return rows


def test_fitted_mllib_model_scores_gaps_and_unseen_categories(spark: SparkSession) -> None:
    train, _ = conform_listings(spark.createDataFrame(generate_listings(300, seed=3)))
    model = build_pipeline(RegressorParams(num_trees=3, max_depth=3), seed=1).fit(train)
    rows = _awkward_rows()
    # Features only, no label: what the stream feeds.
    schema = T.StructType([f for f in listings_schema().fields if f.name in FEATURE_COLUMNS])
    awkward = spark.createDataFrame(
        rows.astype(object).where(rows.notna(), None).values.tolist(), schema
    )

    predictions = [r[PREDICTION_COLUMN] for r in model.transform(awkward).collect()]

    assert len(predictions) == 4
    assert all(p is not None and math.isfinite(p) and p > 0 for p in predictions)


def test_fitted_sklearn_model_scores_gaps_and_unseen_categories() -> None:
    frame = generate_listings(300, seed=3)
    model = build_sklearn_pipeline(1, n_estimators=5, max_depth=4)
    model.fit(frame[list(FEATURE_COLUMNS)], frame[LABEL_COLUMN])

    rows = _awkward_rows()
    rows.loc[0, "bed_type"] = np.nan  # NaN in a text column, as pandas may hand it over
    predictions = model.predict(rows)

    assert predictions.shape == (4,)
    assert np.isfinite(predictions).all()
