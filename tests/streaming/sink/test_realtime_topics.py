"""Reading the real-time query's topics back: exact rows for predictions, dead letters and
records that are neither."""

from __future__ import annotations

from datetime import date, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, BinaryType, StringType, StructField, StructType

from streaming.parse.events import ErrorKind
from streaming.sink.realtime_topics import (
    first_per_source,
    parse_dead_letters,
    parse_prediction_records,
    without_sources,
)
from streaming.sink.tables import DEAD_LETTER_HEADERS, PREDICTIONS_SCHEMA, REJECTED_SCHEMA
from tests.streaming.parse.test_events import RECORDS

HEADERS = ArrayType(
    StructType([StructField("key", StringType()), StructField("value", BinaryType())])
)
RECORDS_WITH_HEADERS = StructType([*RECORDS.fields, StructField("headers", HEADERS)])
AT = datetime(2026, 11, 26, 12, 0, 0)
SOURCE_AT = datetime(2026, 11, 25, 23, 59, 59, 123000)


def prediction(offset: int, scored_at: datetime, **overrides: object) -> dict[str, object]:
    """A predictions-topic value's fields, as ``realtime`` writes them."""
    body: dict[str, object] = {
        "event_id": f"e-{offset}",
        "key": f"listing-{offset}",
        "key_bytes": None,
        "event_time": None,
        "prediction": 100.0 + offset,
        "profile_flags": None,
        "model_name": "listing-price",
        "model_version": "3",
        "model_run_id": "run-1",
        "topic": "events",
        "partition": 1,
        "offset": offset,
        "timestamp": SOURCE_AT,
        "scored_at": scored_at,
    }
    body.update(overrides)
    return body


def encoded(spark: SparkSession, bodies: list[dict[str, object]]) -> list[bytes]:
    """The bodies as ``realtime`` writes them: to_json of the contract's schema."""
    from streaming.sink.tables import REALTIME_PREDICTION_SCHEMA

    frame = spark.createDataFrame(
        [tuple(b[f.name] for f in REALTIME_PREDICTION_SCHEMA) for b in bodies],
        REALTIME_PREDICTION_SCHEMA,
    )
    values = frame.select(F.to_json(F.struct("*")).alias("v")).collect()
    return [r.v.encode() for r in values]


def landing_records(spark: SparkSession, values: list[bytes | None], topic: str) -> DataFrame:
    rows = [(b"k", v, topic, 0, i, AT) for i, v in enumerate(values)]
    return spark.createDataFrame(rows, RECORDS)


def test_a_prediction_record_becomes_its_predictions_row(spark: SparkSession) -> None:
    bodies = [
        prediction(7, AT),
        prediction(8, AT, event_time=datetime(2026, 11, 20, 8, 0), key_bytes=b"\xff\x00"),
    ]
    parsed = parse_prediction_records(
        landing_records(spark, list(encoded(spark, bodies)), "preds"), 4
    )
    rows = [r.asDict() for r in parsed.valid.orderBy("offset").collect()]
    assert [(f.name, f.dataType) for f in parsed.valid.schema] == [
        (f.name, f.dataType) for f in PREDICTIONS_SCHEMA
    ]
    assert rows == [
        {**bodies[0], "batch_id": 4, "event_date": date(2026, 11, 25)},
        {**bodies[1], "key_bytes": bytearray(b"\xff\x00"), "batch_id": 4,
         "event_date": date(2026, 11, 20)},
    ]  # fmt: skip
    assert parsed.quarantined.count() == 0


def test_a_value_that_is_not_a_prediction_is_quarantined_with_its_landing_coordinates(
    spark: SparkSession,
) -> None:
    (good,) = encoded(spark, [prediction(1, AT)])
    values: list[bytes | None] = [
        good,
        b"{not json",
        b'{"event_id": "x", "prediction": 1.5}',
        b'{"topic": "events", "partition": "one", "offset": 3, "timestamp": "2026-11-25T00:00:00Z",'
        b' "scored_at": "2026-11-26T12:00:00Z"}',
        b"\xff\xfe",
        b"[1, 2]",
        None,
    ]
    parsed = parse_prediction_records(landing_records(spark, values, "preds"), 0)
    assert [r.offset for r in parsed.valid.collect()] == [1]
    assert [(f.name, f.dataType) for f in parsed.quarantined.schema] == [
        (f.name, f.dataType) for f in REJECTED_SCHEMA
    ]
    rows = parsed.quarantined.orderBy("offset").collect()
    assert [(r.topic, r.partition, r.offset, r.timestamp, r.value) for r in rows] == [
        ("preds", 0, i, AT, None if values[i] is None else bytearray(values[i] or b""))
        for i in range(1, 7)
    ]
    assert {r.error_kind for r in rows} == {ErrorKind.MALFORMED_PREDICTION}
    assert [r.error_detail for r in rows] == [
        "value is not a JSON object of the predictions record",
        "predictions record without a valid topic, partition, offset, timestamp, scored_at",
        "predictions record without a valid partition",
        "value is not valid UTF-8",
        "value is not a JSON object of the predictions record",
        "value is null",
    ]


def headers(**values: str) -> list[tuple[str, bytes]]:
    return [(name, text.encode()) for name, text in values.items()]


def test_dead_letters_carry_their_source_coordinates_from_the_headers(
    spark: SparkSession,
) -> None:
    good = headers(
        error_kind="malformed_json",
        error_detail="value is not JSON: '{not'",
        source_topic="events",
        source_partition="1",
        source_offset="42",
        source_timestamp="2026-11-25T23:59:59.123Z",
    )
    records = spark.createDataFrame(
        [
            (b"k1", b"{not", "dead", 0, 0, AT, good),
            (None, None, "dead", 0, 1, AT, [("error_kind", b"tombstone"), *good[1:]]),
            (b"k3", b"x", "dead", 0, 2, AT, headers(error_kind="oversized", source_topic="events",
                                                     source_partition="p1", source_offset="9")),
            (b"k4", b"y", "dead", 0, 3, AT, None),
        ],
        RECORDS_WITH_HEADERS,
    )  # fmt: skip
    rows = [r.asDict() for r in parse_dead_letters(records).orderBy("value").collect()]
    source = {"topic": "events", "partition": 1, "offset": 42, "timestamp": SOURCE_AT}
    assert rows == [
        {"key": None, "value": None, **source, "error_kind": "tombstone",
         "error_detail": "value is not JSON: '{not'"},
        {"key": bytearray(b"k3"), "value": bytearray(b"x"), "topic": "dead", "partition": 0,
         "offset": 2, "timestamp": AT, "error_kind": ErrorKind.MALFORMED_DEAD_LETTER,
         "error_detail": "dead-letter record without a valid header source_partition"},
        {"key": bytearray(b"k4"), "value": bytearray(b"y"), "topic": "dead", "partition": 0,
         "offset": 3, "timestamp": AT, "error_kind": ErrorKind.MALFORMED_DEAD_LETTER,
         "error_detail": "dead-letter record without a valid header error_kind, source_topic, "
                         "source_partition, source_offset"},
        {"key": bytearray(b"k1"), "value": bytearray(b"{not"), **source,
         "error_kind": "malformed_json", "error_detail": "value is not JSON: '{not'"},
    ]  # fmt: skip
    assert set(DEAD_LETTER_HEADERS) == {name for name, _ in good}


def test_a_source_record_emitted_twice_is_kept_once_as_first_scored(spark: SparkSession) -> None:
    later = datetime(2026, 11, 26, 12, 5)
    values = encoded(
        spark, [prediction(5, later, prediction=2.0), prediction(5, AT), prediction(6, later)]
    )
    parsed = parse_prediction_records(landing_records(spark, list(values), "preds"), 1)
    kept = first_per_source(parsed.valid, "scored_at").orderBy("offset").collect()
    assert [(r.offset, r.scored_at, r.prediction) for r in kept] == [
        (5, AT, 105.0),
        (6, later, 106.0),
    ]
    others = parsed.valid.where("offset = 6")
    assert [r.offset for r in without_sources(parsed.valid, others).collect()] == [5, 5]
