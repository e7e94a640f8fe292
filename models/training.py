"""Train the MLlib price model, log everything needed to trust and reproduce it, register it."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final, cast, get_args

import mlflow
import mlflow.spark
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.models.model import ModelInfo
from mlflow.types import ColSpec, DataType, Schema
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.evaluation import RegressionEvaluator
from pyspark.ml.regression import GBTRegressionModel, RandomForestRegressionModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from infra.profile import PROFILE_METADATA_KEY
from infra.tracking import TrackingStore
from models import lineage, plots
from models.aliases import DEFAULT_MODEL_NAME, assign_new_version_aliases
from models.errors import DataError, SettingsError
from models.experiments import (
    COMMAND_TAG,
    DEFAULT_EXPERIMENT_NAME,
    open_experiment,
    registry_client,
)
from models.listings import (
    CATEGORICAL_COLUMNS,
    FEATURE_COLUMNS,
    LABEL_COLUMN,
    NUMERIC_COLUMNS,
    DataFormat,
    DataSource,
    ListingsData,
    arrange_partitions,
    data_fingerprint,
    load_listings,
    split_listings,
)
from models.pipeline import (
    PREDICTION_COLUMN,
    RegressorKind,
    RegressorParams,
    build_pipeline,
    effective_max_bins,
    feature_vector_names,
)
from models.profiling import log_profile, profile_data

__all__ = [
    "DEFAULT_SPLIT_SEED",
    "METRIC_NAMES",
    "PreparedData",
    "TrainResult",
    "TrainSettings",
    "TrainingSpec",
    "evaluate",
    "fit_pipeline",
    "input_example",
    "log_data_record",
    "log_environment",
    "log_evaluation",
    "log_spark_model",
    "log_training_record",
    "max_bins_for",
    "model_metadata",
    "model_signature",
    "prepare_data",
    "train",
]

_log = logging.getLogger(__name__)

METRIC_NAMES: Final = ("rmse", "mae", "r2")
DEFAULT_SPLIT_SEED: Final = 42
_RESIDUAL_SAMPLE_ROWS: Final = 5000


def _split_names(text: str) -> tuple[str, ...]:
    return tuple(name for name in text.split(",") if name)


@dataclass(frozen=True)
class TrainingSpec:
    """Everything that decides a trained model's numbers (and nothing else).

    A run logs it as params; :meth:`from_params` reads it back to retrain the same model.

    Attributes:
        source: The training data; its Delta version is pinned when the data is read.
        regressor: Tree hyper-parameters.
        seed: Seed of the regressor (and of the tuning folds).
        holdout_fraction: Share of rows held out for metrics, chosen by a hash of the row key.
        split_seed: Salt of that hash. Kept apart from ``seed`` so that models trained with
            different seeds share one holdout, and promotion compares them on rows neither
            was trained on.
        partitions: Partitions the data is laid out in before fitting (seeded draws are
            per partition, so this is part of what makes a run repeatable).
        categorical_columns: String features.
        numeric_columns: Double features.
        label_column: What the model predicts.
    """

    source: DataSource
    regressor: RegressorParams = field(default_factory=RegressorParams)
    seed: int = 42
    holdout_fraction: float = 0.2
    split_seed: int = DEFAULT_SPLIT_SEED
    partitions: int = 4
    categorical_columns: tuple[str, ...] = CATEGORICAL_COLUMNS
    numeric_columns: tuple[str, ...] = NUMERIC_COLUMNS
    label_column: str = LABEL_COLUMN

    def __post_init__(self) -> None:
        if not 0 < self.holdout_fraction < 1:
            raise SettingsError(f"holdout fraction must be in (0, 1), got {self.holdout_fraction}")
        if self.partitions < 1:
            raise SettingsError(f"partitions must be >= 1, got {self.partitions}")

    @property
    def feature_columns(self) -> tuple[str, ...]:
        """The model's input columns, in the data set's order."""
        chosen = {*self.categorical_columns, *self.numeric_columns}
        known = [c for c in FEATURE_COLUMNS if c in chosen]
        return (
            *known,
            *(c for c in (*self.categorical_columns, *self.numeric_columns) if c not in known),
        )

    def data_params(self) -> dict[str, str]:
        """MLflow params recording what data is read and how it is split."""
        return {
            "data_path": self.source.path,
            "data_format": self.source.format,
            "data_version": "none" if self.source.version is None else str(self.source.version),
            "seed": str(self.seed),
            "holdout_fraction": str(self.holdout_fraction),
            "split_seed": str(self.split_seed),
            "partitions": str(self.partitions),
            "label_column": self.label_column,
            "categorical_columns": ",".join(self.categorical_columns),
            "numeric_columns": ",".join(self.numeric_columns),
        }

    def regressor_params(self) -> dict[str, str]:
        """MLflow params recording the MLlib regressor's hyper-parameters."""
        return {
            "regressor": self.regressor.kind,
            "num_trees": str(self.regressor.num_trees),
            "max_depth": str(self.regressor.max_depth),
            "max_bins": str(self.regressor.max_bins),
            "min_instances_per_node": str(self.regressor.min_instances_per_node),
        }

    @classmethod
    def from_params(cls, params: Mapping[str, str], data_only: bool = False) -> TrainingSpec:
        """Rebuild the spec a run recorded, pinned to the data version it read.

        Args:
            params: The run's params.
            data_only: Read only the data and split (regressor left at defaults), e.g. to
                rebuild the holdout of a run whose model is not an MLlib one.

        Raises:
            KeyError: a param is missing (the run was not made by ``train`` or ``tune``).
            SettingsError: a param does not parse or is out of range.
        """
        version, data_format = params["data_version"], params["data_format"]
        if data_format not in get_args(DataFormat):
            raise SettingsError(f"data_format {data_format!r} is not one of {get_args(DataFormat)}")
        regressor = RegressorParams()
        if not data_only:
            regressor = RegressorParams(
                kind=cast(RegressorKind, params["regressor"]),
                num_trees=int(params["num_trees"]),
                max_depth=int(params["max_depth"]),
                max_bins=int(params["max_bins"]),
                min_instances_per_node=int(params["min_instances_per_node"]),
            )
        return cls(
            source=DataSource(
                path=params["data_path"],
                format=cast(DataFormat, data_format),
                version=None if version == "none" else int(version),
            ),
            regressor=regressor,
            seed=int(params["seed"]),
            holdout_fraction=float(params["holdout_fraction"]),
            split_seed=int(params["split_seed"]),
            partitions=int(params["partitions"]),
            categorical_columns=_split_names(params["categorical_columns"]),
            numeric_columns=_split_names(params["numeric_columns"]),
            label_column=params["label_column"],
        )


@dataclass(frozen=True)
class PreparedData:
    """The data read for one run, laid out and split.

    Attributes:
        data: What was read (path, format, Delta version, key columns).
        train: Rows the model is fitted on (cached).
        holdout: Rows the metrics are computed on (cached).
        rows: Rows read (after dropping rows without a positive label).
        fingerprint: Order-independent hash of those rows.
    """

    data: ListingsData
    train: DataFrame
    holdout: DataFrame
    rows: int
    fingerprint: str

    def release(self) -> None:
        """Drop the cached splits."""
        self.train.unpersist()
        self.holdout.unpersist()


def prepare_data(spark: SparkSession, spec: TrainingSpec) -> PreparedData:
    """Read the spec's data (pinning the Delta version), lay it out and split it.

    Raises:
        DataError: the data cannot be read, misses a column, or has no usable rows.
    """
    data = load_listings(
        spark, spec.source, spec.categorical_columns, spec.numeric_columns, spec.label_column
    )
    arranged = arrange_partitions(data.frame, data.key_columns, spec.partitions)
    rows, fingerprint = data_fingerprint(data.frame)
    train, holdout = split_listings(
        arranged, data.key_columns, spec.split_seed, spec.holdout_fraction
    )
    train, holdout = train.cache(), holdout.cache()
    if train.isEmpty() or holdout.isEmpty():
        train.unpersist()
        holdout.unpersist()
        raise DataError(
            f"{data.path} has {rows} row(s) with a positive {spec.label_column}: too few to "
            f"split into train and holdout (--holdout-fraction {spec.holdout_fraction})"
        )
    return PreparedData(data=data, train=train, holdout=holdout, rows=rows, fingerprint=fingerprint)


def max_bins_for(spec: TrainingSpec, train: DataFrame) -> int:
    """The spec's ``max_bins``, raised to fit the widest categorical of the train split."""
    counts: dict[str, int] = {}
    if spec.categorical_columns:
        row = train.agg(*[F.count_distinct(c).alias(c) for c in spec.categorical_columns]).first()
        assert row is not None
        counts = {c: int(row[c]) for c in spec.categorical_columns}
    return effective_max_bins(spec.regressor.max_bins, counts)


def pipeline_for(spec: TrainingSpec, train: DataFrame) -> tuple[Pipeline, int]:
    """The spec's unfitted pipeline; ``max_bins`` raised for the split's categoricals."""
    max_bins = max_bins_for(spec, train)
    pipeline = build_pipeline(
        spec.regressor,
        spec.seed,
        spec.categorical_columns,
        spec.numeric_columns,
        spec.label_column,
        max_bins=max_bins,
    )
    return pipeline, max_bins


def fit_pipeline(spec: TrainingSpec, train: DataFrame) -> tuple[PipelineModel, int]:
    """Fit the spec's pipeline on the train split.

    Returns:
        The fitted model and the ``max_bins`` used (raised for wide categoricals).
    """
    pipeline, max_bins = pipeline_for(spec, train)
    return pipeline.fit(train), max_bins


def evaluate(predictions: DataFrame, label_column: str = LABEL_COLUMN) -> dict[str, float]:
    """RMSE, MAE and R² of a frame holding the label and ``prediction``.

    Returns:
        ``{"rmse": ..., "mae": ..., "r2": ...}``.
    """
    evaluator = RegressionEvaluator(labelCol=label_column, predictionCol=PREDICTION_COLUMN)
    return {
        name: evaluator.evaluate(predictions, {evaluator.metricName: name}) for name in METRIC_NAMES
    }


def input_example(
    holdout: DataFrame, feature_columns: tuple[str, ...], rows: int = 5
) -> pd.DataFrame:
    """A few complete holdout rows of the model's input columns (for the logged model)."""
    features = holdout.select(*feature_columns)
    example = features.dropna().limit(rows).toPandas()
    return example if len(example) else features.limit(rows).toPandas()


def log_environment() -> None:
    """Log code version, library versions and the lock file to the active run."""
    lock_sha = lineage.file_sha256(lineage.LOCK_FILE)
    mlflow.set_tags(
        lineage.environment_tags(lineage.code_version(), lineage.library_versions(), lock_sha)
    )
    if lineage.LOCK_FILE.is_file():
        mlflow.log_artifact(str(lineage.LOCK_FILE), artifact_path="environment")
    mlflow.log_dict(lineage.library_versions(), "environment/library_versions.json")


def log_data_record(spec: TrainingSpec, prepared: PreparedData) -> None:
    """Log what was read and how it was split: path, format, Delta version, rows, fingerprint,
    seeds, holdout fraction, partitions, columns."""
    data = prepared.data
    mlflow.log_params(
        {
            **spec.data_params(),
            "data_format": data.format,
            "data_version": "none" if data.version is None else str(data.version),
            "data_rows": str(prepared.rows),
            "data_fingerprint": prepared.fingerprint,
            "key_columns": ",".join(data.key_columns),
        }
    )


def log_training_record(spec: TrainingSpec, prepared: PreparedData, max_bins: int) -> None:
    """Log the data record and the regressor's hyper-parameters (incl. the bins used)."""
    log_data_record(spec, prepared)
    mlflow.log_params({**spec.regressor_params(), "effective_max_bins": str(max_bins)})


def log_evaluation(
    model: PipelineModel, spec: TrainingSpec, prepared: PreparedData
) -> dict[str, float]:
    """Score the holdout, log metrics and the feature-importance and residual plots.

    Returns:
        The holdout metrics.
    """
    predictions = model.transform(prepared.holdout)
    metrics = evaluate(predictions, spec.label_column)
    mlflow.log_metrics(
        {
            **metrics,
            "train_rows": float(prepared.train.count()),
            "holdout_rows": float(prepared.holdout.count()),
        }
    )
    names = feature_vector_names(spec.categorical_columns, spec.numeric_columns)
    regressor = cast("RandomForestRegressionModel | GBTRegressionModel", model.stages[-1])
    importances = [float(v) for v in regressor.featureImportances.toArray()]
    mlflow.log_dict(dict(zip(names, importances, strict=True)), "feature_importances.json")
    mlflow.log_figure(
        plots.feature_importance_figure(names, importances), "plots/feature_importances.png"
    )
    sample: pd.DataFrame = (
        predictions.select(spec.label_column, PREDICTION_COLUMN)
        .limit(_RESIDUAL_SAMPLE_ROWS)
        .toPandas()
    )
    mlflow.log_figure(
        plots.residuals_figure(
            sample[spec.label_column].tolist(), sample[PREDICTION_COLUMN].tolist()
        ),
        "plots/residuals.png",
    )
    return metrics


def model_signature(features: DataFrame) -> ModelSignature:
    """The signature every price model is logged with, MLlib or scikit-learn.

    Args:
        features: A frame of exactly the feature columns (only its schema is used).

    Returns:
        Inputs: the feature columns as MLflow ``string`` (categoricals) and ``double``
        (numerics); output: ``prediction`` (``double``).
    """
    inputs = infer_signature(features.limit(0)).inputs
    return ModelSignature(
        inputs=inputs, outputs=Schema([ColSpec(DataType.double, PREDICTION_COLUMN)])
    )


def model_metadata(spec: TrainingSpec, prepared: PreparedData) -> dict[str, object]:
    """The logged model's metadata: the train split's data profile, which the service checks
    each event against. Also logs the profile to the run as ``data_profile.json``."""
    profile = profile_data(prepared.train, spec.numeric_columns, spec.categorical_columns)
    log_profile(profile)
    return {PROFILE_METADATA_KEY: profile.to_dict()}


def log_spark_model(
    model: PipelineModel,
    spec: TrainingSpec,
    prepared: PreparedData,
    registered_model_name: str | None,
) -> ModelInfo:
    """Log the fitted pipeline under ``model`` with signature, input example, data profile and
    pinned requirements; register it when a name is given.

    Returns:
        MLflow's model info (``registered_model_version`` is set when registered).
    """
    example = input_example(prepared.holdout, spec.feature_columns)
    return mlflow.spark.log_model(
        model,
        "model",
        signature=model_signature(prepared.holdout.select(*spec.feature_columns)),
        input_example=example,
        registered_model_name=registered_model_name,
        pip_requirements=lineage.pinned_requirements("pyspark", "mlflow"),
        metadata=model_metadata(spec, prepared),
    )


@dataclass(frozen=True)
class TrainSettings:
    """Settings of ``python -m models train``.

    Attributes:
        spec: What to train on and how.
        model_name: Registered model name.
        experiment_name: MLflow experiment (created if missing).
        experiment_id: Existing experiment to use instead (``mlflow run`` passes one).
        register: Register the model and set aliases.
    """

    spec: TrainingSpec
    model_name: str = DEFAULT_MODEL_NAME
    experiment_name: str = DEFAULT_EXPERIMENT_NAME
    experiment_id: str | None = None
    register: bool = True


@dataclass(frozen=True)
class TrainResult:
    """What ``train`` produced.

    Attributes:
        run_id: The MLflow run.
        model_uri: Where the logged model is (``models:/m-...``).
        model_version: Registered version, or ``None`` when not registered.
        aliases: Aliases the new version got.
        metrics: Holdout RMSE, MAE, R².
        data_version: Delta version trained on (``None`` for Parquet/CSV).
        model: The fitted pipeline.
    """

    run_id: str
    model_uri: str
    model_version: str | None
    aliases: tuple[str, ...]
    metrics: Mapping[str, float]
    data_version: int | None
    model: PipelineModel


def train(spark: SparkSession, store: TrackingStore, settings: TrainSettings) -> TrainResult:
    """Fit the pipeline, log params, metrics, plots, lineage and the model; register it.

    The new version gets alias ``challenger``, and ``champion`` too when there is none.

    Returns:
        The run, model and registry outcome.

    Raises:
        DataError: the data cannot be read or lacks a needed column.
    """
    # Data first: a bad path or table fails before anything is created in the store.
    prepared = prepare_data(spark, settings.spec)
    spec = replace(
        settings.spec, source=replace(settings.spec.source, version=prepared.data.version)
    )
    try:
        experiment_id = open_experiment(store, settings.experiment_name, settings.experiment_id)
        with mlflow.start_run(experiment_id=experiment_id, run_name="train") as run:
            mlflow.set_tag(COMMAND_TAG, "train")
            log_environment()
            model, max_bins = fit_pipeline(spec, prepared.train)
            log_training_record(spec, prepared, max_bins)
            metrics = log_evaluation(model, spec, prepared)
            info = log_spark_model(
                model, spec, prepared, settings.model_name if settings.register else None
            )
            version = info.registered_model_version
            aliases: tuple[str, ...] = ()
            if version is not None:
                aliases = assign_new_version_aliases(
                    registry_client(store), settings.model_name, str(version)
                )
                mlflow.set_tag("models.registered", f"{settings.model_name}/{version}")
    finally:
        prepared.release()
    _log.info(
        "train run %s: rmse %.3f, data %s@%s, version %s %s",
        run.info.run_id,
        metrics["rmse"],
        prepared.data.path,
        prepared.data.version,
        version,
        json.dumps(aliases),
    )
    return TrainResult(
        run_id=run.info.run_id,
        model_uri=info.model_uri,
        model_version=None if version is None else str(version),
        aliases=aliases,
        metrics=metrics,
        data_version=prepared.data.version,
        model=model,
    )
