"""Registered models for the service tests: small, real MLlib pipelines in the real MLflow store."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import Imputer, OneHotEncoder, StringIndexer, VectorAssembler
from pyspark.ml.regression import LinearRegression
from pyspark.sql import DataFrame, SparkSession
from sklearn import compose, impute, linear_model, preprocessing
from sklearn import pipeline as sk_pipeline

from infra.profile import PROFILE_METADATA_KEY
from infra.tracking import TrackingStore, ensure_experiment
from models.profiling import profile_data
from streaming.settings import ServiceSettings, Trigger
from tests.support import send

FEATURES = ["room_type", "accommodates", "bedrooms"]
PIP = ["pyspark==4.2.0"]  # given, so MLflow does not load the model in a subprocess to infer it


def training_frame(spark: SparkSession, slope: float = 50.0) -> DataFrame:
    rows = [
        (room, float(acc), float(bed) if acc % 3 else None, 20.0 + slope * acc + 10.0 * bed + bonus)
        for room, bonus in (("Entire home/apt", 80.0), ("Private room", 20.0), ("Shared room", 0.0))
        for acc in range(1, 9)
        for bed in range(0, 3)
    ]
    return spark.createDataFrame(
        rows, "room_type string, accommodates double, bedrooms double, price double"
    )


def fit_pipeline(train: DataFrame, features: list[str] = FEATURES) -> PipelineModel:
    numeric = [f for f in features if f != "room_type"]
    stages = [
        StringIndexer(inputCol="room_type", outputCol="room_idx", handleInvalid="keep"),
        OneHotEncoder(inputCol="room_idx", outputCol="room_vec", handleInvalid="keep"),
        Imputer(inputCols=numeric, outputCols=[f"{c}_imp" for c in numeric]),
        VectorAssembler(
            inputCols=["room_vec", *[f"{c}_imp" for c in numeric]], outputCol="features"
        ),
        LinearRegression(featuresCol="features", labelCol="price", predictionCol="prediction"),
    ]
    return Pipeline(stages=stages).fit(train)


@dataclass
class Registry:
    """Registers versions of one model name in the session's MLflow store."""

    spark: SparkSession
    store: TrackingStore
    name: str

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(
            tracking_uri=self.store.tracking_uri, registry_uri=self.store.tracking_uri
        )

    def register_spark(
        self,
        model: PipelineModel,
        sample: DataFrame,
        alias: str | None = "champion",
        features: list[str] = FEATURES,
        metadata: dict[str, object] | None = None,
    ) -> str:
        inputs = sample.select(*features).limit(5).toPandas()
        signature = infer_signature(
            sample.select(*features), model.transform(sample).select("prediction")
        )
        ensure_experiment(self.store, "streaming-tests")
        with mlflow.start_run():
            info = mlflow.spark.log_model(
                model, "model", signature=signature, input_example=inputs,
                registered_model_name=self.name, pip_requirements=PIP, metadata=metadata,
            )  # fmt: skip
        version = str(info.registered_model_version)
        if alias:
            self.client.set_registered_model_alias(self.name, alias, version)
        return version

    def register_spark_with_profile(self, model: PipelineModel, sample: DataFrame) -> str:
        """Register ``model`` as champion with the data profile of ``sample``, as ``train`` does."""
        numeric = [f for f in FEATURES if f != "room_type"]
        profile = profile_data(sample, numeric, ["room_type"])
        return self.register_spark(
            model, sample, metadata={PROFILE_METADATA_KEY: profile.to_dict()}
        )

    def register_pyfunc(
        self, python_model: mlflow.pyfunc.PythonModel, example: pd.DataFrame, alias: str | None
    ) -> str:
        signature = infer_signature(example, pd.DataFrame({"prediction": [1.0] * len(example)}))
        ensure_experiment(self.store, "streaming-tests")
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(
                name="model", python_model=python_model, signature=signature,
                input_example=example, registered_model_name=self.name, pip_requirements=["pandas"],
            )  # fmt: skip
        version = str(info.registered_model_version)
        if alias:
            self.client.set_registered_model_alias(self.name, alias, version)
        return version


class RaisingModel(mlflow.pyfunc.PythonModel):
    """A model whose predict always fails, as a broken registered version would."""

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        raise ValueError("this version cannot score anything")


@pytest.fixture
def registry(spark: SparkSession, tracking_store: TrackingStore) -> Registry:
    return Registry(spark, tracking_store, f"listing-price-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="session")
def base_model(spark: SparkSession) -> PipelineModel:
    return fit_pipeline(training_frame(spark))


def event(i: int, **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "event_id": f"e-{i}",
        "room_type": ["Entire home/apt", "Private room", "Shared room", "Hotel room"][i % 4],
        "accommodates": float(1 + i % 6),
        "bedrooms": None if i % 5 == 0 else float(i % 3),
    }
    body.update(overrides)
    return body


def produce(bootstrap: str, topic: str, values: list[bytes | None], start_key: int = 0) -> None:
    send(bootstrap, topic, ((f"listing-{i}".encode(), v) for i, v in enumerate(values, start_key)))


def mixed_events(count: int, start: int = 0, bad_every: int = 7) -> list[bytes | None]:
    """``count`` events where every ``bad_every``-th is malformed in a rotating way."""
    bad: list[bytes | None] = [
        b"{not json",
        json.dumps({"room_type": "Private room", "bedrooms": 1.0}).encode(),  # missing accommodates
        json.dumps(event(0, accommodates="lots")).encode(),
        b"\xc3\x28",
        None,
    ]
    values: list[bytes | None] = []
    for i in range(start, start + count):
        if bad_every and i % bad_every == bad_every - 1:
            values.append(bad[(i // bad_every) % len(bad)])
        else:
            values.append(json.dumps(event(i)).encode())
    return values


def well_formed(values: list[bytes | None]) -> list[dict[str, object]]:
    """The events of ``mixed_events`` the service must score (the rest are quarantined)."""
    return [
        json.loads(v) for v in values if v and v.startswith(b'{"event_id"') and b"lots" not in v
    ]


@pytest.fixture
def service_settings(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> Callable[..., ServiceSettings]:
    def make(model_uri: str, **overrides: object) -> ServiceSettings:
        values: dict[str, object] = {
            "bootstrap_servers": kafka_bootstrap,
            "model_uri": model_uri,
            "predictions_table": str(tmp_path / "predictions"),
            "quarantine_table": str(tmp_path / "quarantine"),
            "topic": (topic,),
            "checkpoint": str(tmp_path / "checkpoint"),
            "query_name": "test-query",
            "trigger": Trigger(interval=None, available_now=True),
            "model_poll_seconds": 0.0,
        }
        values.update(overrides)
        return ServiceSettings(**values)  # type: ignore[arg-type]

    return make


def offsets(spark: SparkSession, table: str) -> list[tuple[int, int]]:
    rows = spark.read.format("delta").load(table).select("partition", "offset").collect()
    return [(r.partition, r.offset) for r in rows]


def all_offsets_once(spark: SparkSession, predictions: str, quarantine: str, produced: int) -> None:
    """Every produced offset is in exactly one row of one of the two tables, with no gap."""
    landed = offsets(spark, predictions) + offsets(spark, quarantine)
    assert len(landed) == len(set(landed)), "an offset landed twice"
    per_partition: dict[int, list[int]] = {}
    for partition, offset in landed:
        per_partition.setdefault(partition, []).append(offset)
    assert sum(len(v) for v in per_partition.values()) == produced
    for found in per_partition.values():
        assert sorted(found) == list(range(len(found))), "a gap in a partition's offsets"


def register_sklearn(registry: Registry, alias: str) -> tuple[str, object]:
    """Register a scikit-learn pipeline (a pyfunc, not MLlib) and point ``alias`` at it."""
    frame = pd.DataFrame([event(i) for i in range(60)])[FEATURES]
    frame["bedrooms"] = frame["bedrooms"].astype(float)
    target = 30.0 * frame["accommodates"] + 5.0
    model = sk_pipeline.make_pipeline(
        compose.ColumnTransformer(
            [
                ("rooms", preprocessing.OneHotEncoder(handle_unknown="ignore"), ["room_type"]),
                ("numbers", impute.SimpleImputer(), ["accommodates", "bedrooms"]),
            ]
        ),
        linear_model.LinearRegression(),
    ).fit(frame, target)
    ensure_experiment(registry.store, "streaming-tests")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(frame, pd.DataFrame({"prediction": model.predict(frame)})),
            input_example=frame.head(3),
            registered_model_name=registry.name,
            pip_requirements=["scikit-learn"],
            skops_trusted_types=["numpy.dtype"],
        )
    version = str(info.registered_model_version)
    registry.client.set_registered_model_alias(registry.name, alias, version)
    return version, model
