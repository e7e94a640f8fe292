"""The real-time topics' record formats and the pure steps that shape records for them.

``python -m streaming realtime`` writes Kafka records, not table rows: a scored event becomes a
predictions-topic record whose value is the JSON of a predictions row
(:data:`~streaming.sink.tables.REALTIME_PREDICTION_SCHEMA`), and a rejected record becomes a
dead-letter record that keeps the source record's key and value and says why in its headers
(:data:`~streaming.sink.tables.DEAD_LETTER_HEADERS`). Every function here is a plain column
expression or DataFrame transformation: nothing talks to Kafka.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, BinaryType, StringType, StructField, StructType

from streaming.score.identity import ModelIdentity
from streaming.sink.tables import DEAD_LETTER_HEADERS, REALTIME_PREDICTION_SCHEMA

__all__ = [
    "KAFKA_HEADERS_TYPE",
    "TOPIC_RECORD_COLUMNS",
    "dead_letter_headers",
    "dead_letter_record",
    "iso_utc",
    "prediction_json",
    "prediction_record",
    "source_key",
    "topic_records",
]

# What Spark's Kafka sink takes: the topic of each record, its key, value and headers.
TOPIC_RECORD_COLUMNS = ("topic", "key", "value", "headers")
KAFKA_HEADERS_TYPE = ArrayType(
    StructType([StructField("key", StringType()), StructField("value", BinaryType())])
)
_ISO_UTC = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
_MODEL_COLUMNS = ("model_name", "model_version", "model_run_id", "scored_at")


def iso_utc(timestamp: Column) -> Column:
    """A timestamp as ISO-8601 text in UTC with milliseconds, ``2026-11-26T16:55:49.123Z``.

    The text is in the session time zone, which the project's sessions set to UTC.
    """
    return F.date_format(timestamp, _ISO_UTC)


def source_key() -> Column:
    """The source record's Kafka key, raw bytes, from a scored row's ``key``/``key_bytes``.

    ``key`` is the key as text and ``key_bytes`` holds the bytes only when they are not UTF-8
    (see :func:`streaming.parse.events.valid_rows`); a null key stays null.
    """
    return F.coalesce(F.col("key_bytes"), F.col("key").cast("binary"))


def prediction_json(model: ModelIdentity, scored_at: Column) -> Column:
    """The JSON value (UTF-8 bytes) of a scored row's predictions-topic record.

    A scored row has the parse step's valid columns plus ``prediction``; the model's lineage and
    ``scored_at`` are added here. ``from_json`` with
    :data:`~streaming.sink.tables.REALTIME_PREDICTION_SCHEMA` reads it back to the same values.
    """
    given = {
        "model_name": F.lit(model.name or model.uri),
        "model_version": F.lit(model.version),
        "model_run_id": F.lit(model.run_id),
        "scored_at": scored_at,
    }
    fields = [
        (given[f.name] if f.name in _MODEL_COLUMNS else F.col(f.name))
        .cast(f.dataType)
        .alias(f.name)
        for f in REALTIME_PREDICTION_SCHEMA.fields
    ]
    # Every field is written, nulls too, so that readers other than Spark see the whole shape.
    return F.to_json(F.struct(*fields), {"ignoreNullFields": "false"}).cast("binary")


def dead_letter_headers(error_kind: Column, error_detail: Column) -> Column:
    """The headers of a dead-letter record: why it was rejected and where it came from.

    Reads the source record's ``topic``, ``partition``, ``offset`` and ``timestamp`` columns.
    """
    values = {
        "error_kind": error_kind,
        "error_detail": error_detail,
        "source_topic": F.col("topic"),
        "source_partition": F.col("partition").cast("string"),
        "source_offset": F.col("offset").cast("string"),
        "source_timestamp": iso_utc(F.col("timestamp")),
    }
    return F.array(
        *[
            F.struct(F.lit(name).alias("key"), values[name].cast("binary").alias("value"))
            for name in DEAD_LETTER_HEADERS
        ]
    ).cast(KAFKA_HEADERS_TYPE)


def prediction_record(model: ModelIdentity, topic: str, scored_at: Column) -> Column:
    """A scored row (valid row plus ``prediction``) as a predictions-topic record: a struct of
    ``topic``, ``key`` (:func:`source_key`), ``value`` (:func:`prediction_json`) and
    ``headers`` (none)."""
    return F.struct(
        F.lit(topic).alias("topic"),
        source_key().alias("key"),
        prediction_json(model, scored_at).alias("value"),
        F.array().cast(KAFKA_HEADERS_TYPE).alias("headers"),
    )


def dead_letter_record(
    topic: str, key: Column, value: Column, error_kind: Column, error_detail: Column
) -> Column:
    """A rejected record as a dead-letter-topic record: a struct of ``topic``, the source
    record's ``key`` and ``value`` bytes (null staying null) and ``headers``
    (:func:`dead_letter_headers`)."""
    return F.struct(
        F.lit(topic).alias("topic"),
        key.alias("key"),
        value.alias("value"),
        dead_letter_headers(error_kind, error_detail).alias("headers"),
    )


def topic_records(rows: DataFrame, record: Column) -> DataFrame:
    """``rows`` as what Spark's Kafka sink writes (``TOPIC_RECORD_COLUMNS``), one per row, from
    a ``record`` struct such as :func:`prediction_record`'s."""
    return rows.select(record.alias("_record")).select(
        *[F.col(f"_record.{c}") for c in TOPIC_RECORD_COLUMNS]
    )
