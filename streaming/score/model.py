"""A registered model made ready to score a DataFrame of events, and checked before use.

MLlib models (``spark`` flavor) score with their native ``transform``; any other MLflow model
scores through ``mlflow.pyfunc.spark_udf``.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import Model
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from infra.errors import first_line
from infra.profile import PROFILE_METADATA_KEY, DataProfile, ProfileError
from streaming.errors import ModelLoadError
from streaming.parse.schema import EventSchema, event_schema_from_signature
from streaming.score.identity import ModelIdentity

__all__ = ["LoadedModel", "Scorer", "load_model"]

log = logging.getLogger(__name__)

Scorer = Callable[[DataFrame], DataFrame]


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to score: who it is, what events it needs, how it scores, the profile
    of its training data (``None`` when it was logged without one), and the feature values of
    the row its smoke prediction scored (in ``schema.names`` order; a row it is known to score).
    """

    identity: ModelIdentity
    schema: EventSchema
    scorer: Scorer
    flavor: str
    profile: DataProfile | None = None
    example: tuple[Any, ...] = ()

    def score(self, events: DataFrame) -> DataFrame:
        """``events`` with a ``prediction`` column (double) added; other columns unchanged."""
        return self.scorer(events)


def _spark_scorer(model: Any) -> Scorer:
    """Score with the model's JVM object in one call when it has one.

    PySpark's ``PipelineModel.transform`` walks the stages in Python and sends every stage's
    parameters to the JVM again on each call (hundreds of py4j round trips per micro-batch);
    the JVM pipeline built once here does the same transform in one call.
    """
    transform = _jvm_transform(model) or model.transform

    def score(events: DataFrame) -> DataFrame:
        return transform(events).select(
            *[F.col(c) for c in events.columns],
            F.col("prediction").cast("double").alias("prediction"),
        )

    return score


def _jvm_transform(model: Any) -> Callable[[DataFrame], DataFrame] | None:
    """``model``'s transform as one JVM call, or ``None`` when a stage is Python-only."""
    try:
        java_model = model._to_java()
    except (AttributeError, TypeError):
        return None

    def transform(events: DataFrame) -> DataFrame:
        return DataFrame(java_model.transform(events._jdf), events.sparkSession)

    return transform


def _pyfunc_scorer(spark: SparkSession, local_dir: str, names: list[str]) -> Scorer:
    # From the copy already downloaded: spark_udf makes its own copy to ship to the executors.
    udf = mlflow.pyfunc.spark_udf(spark, local_dir, result_type="double", env_manager="local")

    def score(events: DataFrame) -> DataFrame:
        return events.withColumn("prediction", udf(F.struct(*[F.col(n) for n in names])))

    return score


def _smoke_rows(
    spark: SparkSession, model: Model, local_dir: str, schema: EventSchema
) -> tuple[list[list[Any]], DataFrame]:
    """The model's logged input example, or one row of nulls when it has none, as values
    (typed for the schema) and as a DataFrame."""
    example = None
    try:
        example = model.load_input_example(local_dir)
    except Exception as e:  # an unreadable example is no reason to refuse a model
        log.warning("input example of %s unreadable (%s); smoke-testing with nulls", local_dir, e)
    rows: list[list[Any]] = [[None] * len(schema.names)]
    if isinstance(example, pd.DataFrame):
        frame = example.reindex(columns=schema.names)
        rows = [[None if _is_missing(v) else v for v in row] for row in frame.to_numpy().tolist()]
    typed = [
        [
            _coerce(v, f.dataType.typeName())
            for v, f in zip(row, schema.features.fields, strict=True)
        ]
        for row in rows
    ]
    return typed, spark.createDataFrame(typed, schema.features)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _coerce(value: Any, type_name: str) -> Any:
    if value is None:
        return None
    if type_name in {"double", "float"}:
        return float(value)
    if type_name in {"integer", "long"}:
        return int(value)
    if type_name == "string":
        return str(value)
    return value


def _profile_of(model: Model, uri: str) -> DataProfile | None:
    """The training data's profile logged in the model's metadata, if any.

    Raises:
        ModelLoadError: a profile is there but cannot be read.
    """
    logged = (model.metadata or {}).get(PROFILE_METADATA_KEY)
    if logged is None:
        log.info("model %s has no data profile: events are checked against its signature only", uri)
        return None
    try:
        return DataProfile.from_dict(logged)
    except ProfileError as e:
        raise ModelLoadError(f"model {uri}: {e}") from e


def load_model(spark: SparkSession, uri: str, identity: ModelIdentity) -> LoadedModel:
    """Download a model once, build its scorer and check it predicts on its own input example.

    The downloaded copy is removed before returning: an MLlib model is in the JVM by then, and
    a pyfunc model has been copied by ``spark_udf`` for the executors.

    Raises:
        ModelLoadError: the model cannot be downloaded or loaded, has no usable signature,
            or its smoke prediction fails or returns null/NaN.
    """
    workdir = Path(tempfile.mkdtemp(prefix="model-"))
    try:
        try:
            local_dir = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(workdir))
            model = Model.load(local_dir)
            schema = event_schema_from_signature(model.signature, uri)
            profile = _profile_of(model, uri)
            if "spark" in model.flavors:
                scorer, flavor = _spark_scorer(mlflow.spark.load_model(local_dir)), "spark"
            else:
                scorer, flavor = _pyfunc_scorer(spark, local_dir, schema.names), "pyfunc"
        except ModelLoadError:
            raise
        except Exception as e:
            raise ModelLoadError(f"cannot load model {uri}: {first_line(e)}") from e
        loaded = LoadedModel(
            identity=identity, schema=schema, scorer=scorer, flavor=flavor, profile=profile
        )
        try:
            rows, smoke = _smoke_rows(spark, model, local_dir, schema)
            predictions = [r.prediction for r in loaded.score(smoke).collect()]
            loaded = replace(loaded, example=tuple(rows[0]))
        except Exception as e:
            raise ModelLoadError(f"model {uri} failed its smoke prediction: {first_line(e)}") from e
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if not predictions or any(_is_missing(p) for p in predictions):
        raise ModelLoadError(f"model {uri} smoke prediction returned null or NaN: {predictions}")
    return loaded
