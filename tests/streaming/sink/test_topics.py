"""The real-time topics' records, shaped from tiny DataFrames without a stream or a broker."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import StringIndexer, VectorAssembler
from pyspark.ml.regression import LinearRegression
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StringType, StructField, StructType

from streaming.errors import ModelLoadError
from streaming.parse.events import EventJudge, rejected_rows, valid_rows
from streaming.parse.schema import EventSchema
from streaming.query.realtime import realtime_records, require_mllib
from streaming.score.identity import ModelIdentity
from streaming.score.model import LoadedModel
from streaming.sink.tables import (
    DEAD_LETTER_HEADERS,
    PREDICTIONS_SCHEMA,
    REALTIME_PREDICTION_SCHEMA,
    REJECTED_SCHEMA,
)
from streaming.sink.topics import dead_letter_record, prediction_record, topic_records


def prediction_records(
    scored: DataFrame, model: ModelIdentity, topic: str, scored_at: Column
) -> DataFrame:
    """Scored rows as predictions-topic records, one per row."""
    return topic_records(scored, prediction_record(model, topic, scored_at))


def dead_letter_records(rejected: DataFrame, topic: str) -> DataFrame:
    """Rejected records (``REJECTED_SCHEMA``) as dead-letter-topic records, one per row."""
    record = dead_letter_record(
        topic, F.col("key"), F.col("value"), F.col("error_kind"), F.col("error_detail")
    )
    return topic_records(rejected, record)


AT = datetime(2026, 11, 26, 16, 55, 49, 123000)
SCORED_AT = datetime(2026, 11, 26, 16, 55, 50, 7000)
MODEL = ModelIdentity("models:/price/3", "price", "3", "run-3")
SCORED = (
    "event_id string, key string, key_bytes binary, event_time timestamp, room_type string, "
    "accommodates double, profile_flags string, topic string, partition int, offset bigint, "
    "timestamp timestamp, prediction double"
)
RECORDS = (
    "key binary, value binary, topic string, partition int, offset bigint, timestamp timestamp"
)
SCHEMA = EventSchema(
    features=StructType(
        [StructField("room_type", StringType()), StructField("accommodates", DoubleType())]
    ),
    required=frozenset({"room_type", "accommodates"}),
)


def test_a_prediction_record_is_keyed_by_the_source_key_and_its_json_reads_back(
    spark: SparkSession,
) -> None:
    rows = [
        ("e-1", "listing-1", None, AT, "Private room", 2.0, None, "events", 0, 7, AT, 101.5),
        # A key that is not UTF-8: its text has U+FFFD, its bytes are kept in key_bytes.
        (None, "\ufffd(", b"\xc3\x28", None, "Shared room", None, "out_of_range: x", "events",
         1, 8, AT, 42.0),
        (None, None, None, None, "Hotel room", 1.0, None, "events", 0, 9, AT, 7.25),
    ]  # fmt: skip
    scored = spark.createDataFrame(rows, SCORED)

    records = prediction_records(scored, MODEL, "predictions", F.lit(SCORED_AT)).collect()

    assert [r.topic for r in records] == ["predictions"] * 3
    assert [r.key for r in records] == [b"listing-1", b"\xc3\x28", None]
    assert [r.headers for r in records] == [[], [], []]
    first = json.loads(bytes(records[0].value))
    assert first == {
        "event_id": "e-1", "key": "listing-1", "key_bytes": None,
        "event_time": "2026-11-26T16:55:49.123Z", "prediction": 101.5, "profile_flags": None,
        "model_name": "price", "model_version": "3", "model_run_id": "run-3", "topic": "events",
        "partition": 0, "offset": 7, "timestamp": "2026-11-26T16:55:49.123Z",
        "scored_at": "2026-11-26T16:55:50.007Z",
    }  # fmt: skip
    assert list(first) == REALTIME_PREDICTION_SCHEMA.fieldNames()
    assert set(PREDICTIONS_SCHEMA.fieldNames()) - set(first) == {"batch_id", "event_date"}
    # from_json with the contract's schema gives the scored row's values back.
    values = spark.createDataFrame([(bytes(r.value),) for r in records], "value binary")
    parsed = values.select(
        F.from_json(F.col("value").cast("string"), REALTIME_PREDICTION_SCHEMA).alias("p")
    ).select("p.*")
    expected = scored.select(
        *[
            (F.lit(v) if n in ("model_name", "model_version", "model_run_id", "scored_at")
             else F.col(n)).cast(REALTIME_PREDICTION_SCHEMA[n].dataType).alias(n)
            for n, v in (
                (f.name, {"model_name": "price", "model_version": "3", "model_run_id": "run-3",
                          "scored_at": SCORED_AT}.get(f.name))
                for f in REALTIME_PREDICTION_SCHEMA.fields
            )
        ]
    )  # fmt: skip
    assert parsed.collect() == expected.collect()


def test_a_dead_letter_keeps_the_source_bytes_and_says_why_in_its_headers(
    spark: SparkSession,
) -> None:
    rows = [
        (b"k-1", b"{not json", "events", 2, 41, AT, "malformed_json", "value is not valid JSON"),
        (None, None, "events", 0, 5, AT, "tombstone", "record has no value"),
    ]
    rejected = spark.createDataFrame(rows, REJECTED_SCHEMA)

    records = dead_letter_records(rejected, "dead").collect()

    assert [(r.topic, r.key, r.value) for r in records] == [
        ("dead", b"k-1", b"{not json"),
        ("dead", None, None),
    ]
    headers = [[(h.key, bytes(h.value).decode()) for h in r.headers] for r in records]
    assert headers == [
        list(zip(DEAD_LETTER_HEADERS, ["malformed_json", "value is not valid JSON", "events",
                                       "2", "41", "2026-11-26T16:55:49.123Z"], strict=True)),
        list(zip(DEAD_LETTER_HEADERS, ["tombstone", "record has no value", "events", "0", "5",
                                       "2026-11-26T16:55:49.123Z"], strict=True)),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def strict_model(spark: SparkSession) -> PipelineModel:
    """A pipeline whose transform fails on a null number (VectorAssembler's default)."""
    train = spark.createDataFrame(
        [(room, float(n), 10.0 * n + (5.0 if room == "Private room" else 0.0))
         for room in ("Private room", "Shared room") for n in range(1, 6)],
        "room_type string, accommodates double, price double",
    )  # fmt: skip
    return Pipeline(
        stages=[
            StringIndexer(inputCol="room_type", outputCol="room_idx", handleInvalid="keep"),
            VectorAssembler(inputCols=["room_idx", "accommodates"], outputCol="features"),
            LinearRegression(featuresCol="features", labelCol="price"),
        ]
    ).fit(train)


def _loaded(model: PipelineModel) -> LoadedModel:
    def score(events: DataFrame) -> DataFrame:
        scored = model.transform(events)
        return scored.select(*events.columns, F.col("prediction").cast("double"))

    return LoadedModel(MODEL, SCHEMA, score, "spark", example=("Private room", 2.0))


def test_one_plan_routes_each_record_to_its_topic_as_the_micro_batch_path_would(
    spark: SparkSession, strict_model: PipelineModel
) -> None:
    values = [
        b'{"event_id": "a", "room_type": "Private room", "accommodates": 3}',
        b'{"room_type": "Shared room"}',  # no accommodates: null for the model
        b"{not json",
        None,
        b'{"event_id": "b", "room_type": "Hotel room", "accommodates": 1}',
    ]
    records = spark.createDataFrame(
        [(f"k{i}".encode(), v, "events", 0, i, AT) for i, v in enumerate(values)], RECORDS
    )
    model, judge = _loaded(strict_model), EventJudge(SCHEMA)
    judged = judge.judge(records)
    # Scoring the rejected rows' own values would fail the whole query.
    with pytest.raises(Exception, match=r"(?i)null|assembl"):
        model.score(judged.frame.select(*judged.valid_columns)).collect()

    out = realtime_records(records, judge, model, "predictions", "dead", F.lit(SCORED_AT))
    rows = out.collect()

    assert out.columns == ["topic", "key", "value", "headers"]
    assert [r.topic for r in rows] == ["predictions", "dead", "dead", "dead", "predictions"]
    expected = prediction_records(model.score(valid_rows(judged)), MODEL, "p", F.lit(SCORED_AT))
    assert [(r.key, bytes(r.value)) for r in rows if r.topic == "predictions"] == [
        (r.key, bytes(r.value)) for r in expected.collect()
    ]
    letters = dead_letter_records(rejected_rows(judged), "dead").collect()
    assert [(r.key, r.value, r.headers) for r in rows if r.topic == "dead"] == [
        (r.key, r.value, r.headers) for r in letters
    ]
    assert [dict((h.key, bytes(h.value)) for h in r.headers)["error_kind"] for r in letters] == [
        b"missing_field",
        b"malformed_json",
        b"tombstone",
    ]


def test_a_model_that_needs_python_is_refused_in_one_line() -> None:
    pyfunc = LoadedModel(MODEL, SCHEMA, lambda df: df, "pyfunc")

    with pytest.raises(ModelLoadError) as raised:
        require_mllib(pyfunc)

    assert str(raised.value) == (
        "real-time mode scores MLlib models only; price v3 is a pyfunc model: use "
        "`python -m streaming run` (micro-batch, exactly once into Delta) to serve it"
    )
    require_mllib(LoadedModel(MODEL, SCHEMA, lambda df: df, "spark"))  # an MLlib model passes
