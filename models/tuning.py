"""Distributed tuning: Spark ML CrossValidator and scikit-learn grid search on joblibspark.

One ``tune`` run holds two child runs, one per backend; each logs its best model (registered)
and holds one child run per trial. The ``spark-ml`` child records the data and the best
hyper-parameters exactly as ``train`` does, so ``reproduce`` works on it too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import joblib
import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
from pyspark.ml import PipelineModel
from pyspark.ml.evaluation import RegressionEvaluator
from pyspark.ml.regression import GBTRegressor, RandomForestRegressor
from pyspark.ml.tuning import CrossValidator, CrossValidatorModel, ParamGridBuilder
from pyspark.sql import SparkSession
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error
from sklearn.model_selection import GridSearchCV, KFold

from infra.tracking import TrackingStore
from models import lineage
from models.aliases import DEFAULT_MODEL_NAME, assign_new_version_aliases, sklearn_model_name
from models.errors import SettingsError
from models.experiments import (
    COMMAND_TAG,
    DEFAULT_EXPERIMENT_NAME,
    open_experiment,
    registry_client,
)
from models.pipeline import PREDICTION_COLUMN
from models.sklearn_pipeline import SKOPS_TRUSTED_TYPES, build_sklearn_pipeline
from models.training import (
    PreparedData,
    TrainingSpec,
    input_example,
    log_data_record,
    log_environment,
    log_evaluation,
    log_spark_model,
    log_training_record,
    model_metadata,
    model_signature,
    pipeline_for,
    prepare_data,
)

__all__ = ["BackendResult", "TuneResult", "TuneSettings", "tune"]

_log = logging.getLogger(__name__)

SPARK_BACKEND: Final = "spark-ml"
SKLEARN_BACKEND: Final = "scikit-learn"
BACKEND_TAG: Final = "models.backend"


@dataclass(frozen=True)
class TuneSettings:
    """Settings of ``python -m models tune``.

    Attributes:
        spec: Data, split, seed and the fixed regressor settings; the grid overrides
            ``num_trees`` and ``max_depth``.
        num_trees_grid: Trees per forest to try (both backends).
        max_depth_grid: Tree depths to try (both backends).
        folds: Cross-validation folds.
        parallelism: Trials fitted at once (Spark threads; joblib Spark tasks).
        model_name: Registered name of the best MLlib model.
        sklearn_model_name: Registered name of the best scikit-learn model
            (default ``<model_name>-sklearn``).
        experiment_name: MLflow experiment (created if missing).
        experiment_id: Existing experiment to use instead (``mlflow run`` passes one).
        register: Register the best models and set their aliases.
    """

    spec: TrainingSpec
    num_trees_grid: tuple[int, ...] = (10, 30)
    max_depth_grid: tuple[int, ...] = (4, 8)
    folds: int = 3
    parallelism: int = 2
    model_name: str = DEFAULT_MODEL_NAME
    sklearn_model_name: str | None = None
    experiment_name: str = DEFAULT_EXPERIMENT_NAME
    experiment_id: str | None = None
    register: bool = True

    def __post_init__(self) -> None:
        if not self.num_trees_grid or not self.max_depth_grid:
            raise SettingsError(
                "the grids of --num-trees-grid and --max-depth-grid cannot be empty"
            )
        if self.folds < 2:
            raise SettingsError(f"--folds must be >= 2, got {self.folds}")
        if self.parallelism < 1:
            raise SettingsError(f"--parallelism must be >= 1, got {self.parallelism}")


@dataclass(frozen=True)
class BackendResult:
    """The best model one backend found.

    Attributes:
        run_id: The backend's child run (holds the model and the trials).
        best_params: Winning ``num_trees`` and ``max_depth``.
        metrics: Holdout RMSE, MAE, R² of the best model refitted on the train split.
        model_name: Registered name (``None`` when not registered).
        model_version: Registered version.
        aliases: Aliases the version got.
        trial_run_ids: One child run per trial.
    """

    run_id: str
    best_params: Mapping[str, int]
    metrics: Mapping[str, float]
    model_name: str | None
    model_version: str | None
    aliases: tuple[str, ...]
    trial_run_ids: tuple[str, ...]


@dataclass(frozen=True)
class TuneResult:
    """What ``tune`` produced: the parent run and each backend's best."""

    run_id: str
    spark: BackendResult
    sklearn: BackendResult


def _log_trial(backend: str, index: int, params: Mapping[str, Any], mean: float, std: float) -> str:
    with mlflow.start_run(run_name=f"{backend}-trial-{index}", nested=True) as trial:
        mlflow.set_tag(BACKEND_TAG, backend)
        mlflow.log_params(dict(params))
        mlflow.log_metrics({"cv_rmse": mean, "cv_rmse_std": std})
    return trial.info.run_id


def _register(
    store: TrackingStore, name: str | None, version: int | None
) -> tuple[str | None, tuple[str, ...]]:
    if name is None or version is None:
        return None, ()
    mlflow.set_tag("models.registered", f"{name}/{version}")
    return str(version), assign_new_version_aliases(registry_client(store), name, str(version))


def _tune_spark(
    store: TrackingStore,
    settings: TuneSettings,
    spec: TrainingSpec,
    prepared: PreparedData,
    run_id: str,
) -> BackendResult:
    pipeline, max_bins = pipeline_for(spec, prepared.train)
    regressor = pipeline.getStages()[-1]
    assert isinstance(regressor, RandomForestRegressor | GBTRegressor)
    trees = (
        regressor.numTrees if isinstance(regressor, RandomForestRegressor) else regressor.maxIter
    )
    grid = (
        ParamGridBuilder()
        .addGrid(trees, list(settings.num_trees_grid))
        .addGrid(regressor.maxDepth, list(settings.max_depth_grid))
        .build()
    )
    validator = CrossValidator(
        estimator=pipeline,
        estimatorParamMaps=grid,
        evaluator=RegressionEvaluator(
            labelCol=spec.label_column, predictionCol=PREDICTION_COLUMN, metricName="rmse"
        ),
        numFolds=settings.folds,
        parallelism=settings.parallelism,
        seed=spec.seed,
    )
    fitted: CrossValidatorModel = validator.fit(prepared.train)
    trials = [
        {"num_trees": int(point[trees]), "max_depth": int(point[regressor.maxDepth])}
        for point in grid
    ]
    trial_ids = tuple(
        _log_trial(SPARK_BACKEND, i, trial, float(mean), float(std))
        for i, (trial, mean, std) in enumerate(
            zip(trials, fitted.avgMetrics, fitted.stdMetrics, strict=True)
        )
    )
    best = trials[int(np.argmin(fitted.avgMetrics))]
    best_spec = replace(
        spec,
        regressor=replace(spec.regressor, num_trees=best["num_trees"], max_depth=best["max_depth"]),
    )
    # The validator refits the best point on the whole train split: the same model `train`
    # fits with these hyper-parameters, so the record below is a complete training record.
    best_model = fitted.bestModel
    assert isinstance(best_model, PipelineModel)
    log_training_record(best_spec, prepared, max_bins)
    metrics = log_evaluation(best_model, best_spec, prepared)
    info = log_spark_model(
        best_model, best_spec, prepared, settings.model_name if settings.register else None
    )
    version, aliases = _register(
        store, settings.model_name if settings.register else None, info.registered_model_version
    )
    return BackendResult(
        run_id=run_id,
        best_params=best,
        metrics=metrics,
        model_name=settings.model_name if settings.register else None,
        model_version=version,
        aliases=aliases,
        trial_run_ids=trial_ids,
    )


def _sklearn_metrics(actual: Sequence[float], predicted: Sequence[float]) -> dict[str, float]:
    return {
        "rmse": float(root_mean_squared_error(actual, predicted)),
        "mae": float(mean_absolute_error(actual, predicted)),
        "r2": float(r2_score(actual, predicted)),
    }


def _tune_sklearn(
    store: TrackingStore,
    settings: TuneSettings,
    spec: TrainingSpec,
    prepared: PreparedData,
    run_id: str,
) -> BackendResult:
    from joblibspark import register_spark

    features = list(spec.feature_columns)
    # Partition layout and sort order are fixed, so the row order (and the folds) repeat.
    train: pd.DataFrame = prepared.train.toPandas()
    holdout: pd.DataFrame = prepared.holdout.toPandas()
    search = GridSearchCV(
        build_sklearn_pipeline(spec.seed, spec.categorical_columns, spec.numeric_columns),
        param_grid={
            "regressor__n_estimators": list(settings.num_trees_grid),
            "regressor__max_depth": list(settings.max_depth_grid),
        },
        scoring="neg_root_mean_squared_error",
        cv=KFold(n_splits=settings.folds, shuffle=True, random_state=spec.seed),
        n_jobs=settings.parallelism,
        refit=True,
    )
    register_spark()
    with joblib.parallel_backend("spark", n_jobs=settings.parallelism):
        search.fit(train[features], train[spec.label_column])

    results = search.cv_results_
    trials = [
        {
            "num_trees": int(p["regressor__n_estimators"]),
            "max_depth": int(p["regressor__max_depth"]),
        }
        for p in results["params"]
    ]
    trial_ids = tuple(
        _log_trial(SKLEARN_BACKEND, i, trial, -float(mean), float(std))
        for i, (trial, mean, std) in enumerate(
            zip(trials, results["mean_test_score"], results["std_test_score"], strict=True)
        )
    )
    best = trials[int(search.best_index_)]
    log_data_record(spec, prepared)
    mlflow.log_params(
        {
            "regressor": "sklearn-random-forest",
            "num_trees": best["num_trees"],
            "max_depth": best["max_depth"],
        }
    )
    predicted = search.best_estimator_.predict(holdout[features])
    metrics = _sklearn_metrics(holdout[spec.label_column].tolist(), predicted.tolist())
    mlflow.log_metrics(
        {**metrics, "train_rows": float(len(train)), "holdout_rows": float(len(holdout))}
    )
    name = (
        (settings.sklearn_model_name or sklearn_model_name(settings.model_name))
        if settings.register
        else None
    )
    info = mlflow.sklearn.log_model(
        search.best_estimator_,
        name="model",
        signature=model_signature(prepared.holdout.select(*features)),
        input_example=input_example(prepared.holdout, spec.feature_columns),
        registered_model_name=name,
        pip_requirements=lineage.pinned_requirements(
            "scikit-learn", "mlflow", "pandas", "numpy", "skops"
        ),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        metadata=model_metadata(spec, prepared),
        skops_trusted_types=list(SKOPS_TRUSTED_TYPES),
    )
    version, aliases = _register(store, name, info.registered_model_version)
    return BackendResult(
        run_id=run_id,
        best_params=best,
        metrics=metrics,
        model_name=name,
        model_version=version,
        aliases=aliases,
        trial_run_ids=trial_ids,
    )


def tune(spark: SparkSession, store: TrackingStore, settings: TuneSettings) -> TuneResult:
    """Grid-search both backends on the train split, log every trial, register each best.

    Returns:
        The parent run and each backend's best model.

    Raises:
        DataError: the data cannot be read or lacks a needed column.
    """
    # Data first: a bad path or table fails before anything is created in the store.
    prepared = prepare_data(spark, settings.spec)
    spec = replace(
        settings.spec, source=replace(settings.spec.source, version=prepared.data.version)
    )
    grid_params = {
        "num_trees_grid": ",".join(map(str, settings.num_trees_grid)),
        "max_depth_grid": ",".join(map(str, settings.max_depth_grid)),
        "folds": settings.folds,
        "parallelism": settings.parallelism,
    }
    try:
        experiment_id = open_experiment(store, settings.experiment_name, settings.experiment_id)
        with mlflow.start_run(experiment_id=experiment_id, run_name="tune") as parent:
            mlflow.set_tag(COMMAND_TAG, "tune")
            log_environment()
            log_data_record(spec, prepared)
            mlflow.log_params(grid_params)
            results = {}
            for backend, run_backend in (
                (SPARK_BACKEND, _tune_spark),
                (SKLEARN_BACKEND, _tune_sklearn),
            ):
                with mlflow.start_run(run_name=backend, nested=True) as child:
                    mlflow.set_tags({COMMAND_TAG: "tune", BACKEND_TAG: backend})
                    log_environment()
                    mlflow.log_params(grid_params)
                    results[backend] = run_backend(
                        store, settings, spec, prepared, child.info.run_id
                    )
                mlflow.log_metrics(
                    {f"{backend}.{k}": v for k, v in results[backend].metrics.items()}
                )
    finally:
        prepared.release()
    _log.info(
        "tune run %s: spark-ml rmse %.3f %s, scikit-learn rmse %.3f %s",
        parent.info.run_id,
        results[SPARK_BACKEND].metrics["rmse"],
        results[SPARK_BACKEND].best_params,
        results[SKLEARN_BACKEND].metrics["rmse"],
        results[SKLEARN_BACKEND].best_params,
    )
    return TuneResult(
        run_id=parent.info.run_id, spark=results[SPARK_BACKEND], sklearn=results[SKLEARN_BACKEND]
    )
