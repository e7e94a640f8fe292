"""The two output tables' schemas and the pure steps that shape rows for them."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BinaryType,
    DateType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from streaming.score.identity import ModelIdentity

__all__ = [
    "DEAD_LETTER_HEADERS",
    "PREDICTIONS_ADDED_LATER",
    "PREDICTIONS_PARTITION",
    "PREDICTIONS_PROPERTIES",
    "PREDICTIONS_SCHEMA",
    "QUARANTINE_PARTITION",
    "QUARANTINE_PROPERTIES",
    "QUARANTINE_SCHEMA",
    "REALTIME_PREDICTION_SCHEMA",
    "REJECTED_SCHEMA",
    "SOURCE_COORDINATES",
    "event_date",
    "predictions_rows",
    "quarantine_rows",
]

_KAFKA = [
    StructField("topic", StringType()),
    StructField("partition", IntegerType()),
    StructField("offset", LongType()),
    StructField("timestamp", TimestampType()),
]

PREDICTIONS_SCHEMA = StructType(
    [
        StructField("event_id", StringType()),
        StructField("key", StringType()),
        StructField("key_bytes", BinaryType()),
        StructField("event_time", TimestampType()),
        StructField("prediction", DoubleType()),
        StructField("profile_flags", StringType()),
        StructField("model_name", StringType()),
        StructField("model_version", StringType()),
        StructField("model_run_id", StringType()),
        *_KAFKA,
        StructField("batch_id", LongType()),
        StructField("scored_at", TimestampType()),
        StructField("event_date", DateType()),
    ]
)
PREDICTIONS_PARTITION = ("event_date",)
# What identifies a scored or quarantined record: its SOURCE record's Kafka coordinates.
SOURCE_COORDINATES = ("topic", "partition", "offset")

# The value of a predictions-topic record (``realtime`` writes it with to_json, ``land`` reads
# it back with from_json): the predictions table's columns but those the landing adds.
REALTIME_PREDICTION_SCHEMA = StructType(
    [f for f in PREDICTIONS_SCHEMA.fields if f.name not in {"batch_id", "event_date"}]
)
# The Kafka headers (UTF-8 text) of a dead-letter record, whose key and value are the source
# record's raw bytes: why it was rejected and where it came from. ``source_timestamp`` is
# ISO-8601 UTC, e.g. 2026-11-26T16:55:49.123Z.
DEAD_LETTER_HEADERS = (
    "error_kind",
    "error_detail",
    "source_topic",
    "source_partition",
    "source_offset",
    "source_timestamp",
)
# Columns that tables created before they existed get added at start.
PREDICTIONS_ADDED_LATER = ("key_bytes", "profile_flags")

# A Delta checkpoint rewrites the table's whole state; at the default of one per 10 commits it
# lands every few batches and stalls the one that writes it by seconds. Readers replay at most
# this many small commit files instead.
_LOG_PROPERTIES = {"delta.checkpointInterval": "100"}
# Table properties the service creates its tables with.
PREDICTIONS_PROPERTIES = {"delta.appendOnly": "true", **_LOG_PROPERTIES}
QUARANTINE_PROPERTIES = dict(_LOG_PROPERTIES)

# A rejected record as the parse step reports it: raw bytes, where it came from, and why.
REJECTED_SCHEMA = StructType(
    [
        StructField("key", BinaryType()),
        StructField("value", BinaryType()),
        *_KAFKA,
        StructField("error_kind", StringType()),
        StructField("error_detail", StringType()),
    ]
)

QUARANTINE_SCHEMA = StructType(
    [
        *REJECTED_SCHEMA.fields,
        StructField("batch_id", LongType()),
        StructField("quarantined_at", TimestampType()),
        StructField("quarantined_date", DateType()),
    ]
)
QUARANTINE_PARTITION = ("quarantined_date",)


def _conform(df: DataFrame, schema: StructType) -> DataFrame:
    return df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def event_date() -> Column:
    """A predictions row's ``event_date``: the day of ``event_time`` when the event carries
    one, else of the Kafka ``timestamp``, so that a day's rows can be read alone."""
    return F.to_date(F.coalesce("event_time", "timestamp"))


def predictions_rows(
    scored: DataFrame, model: ModelIdentity, batch_id: int, scored_at: datetime
) -> DataFrame:
    """Shape scored events (parse output plus ``prediction``) as predictions-table rows,
    dated by :func:`event_date`."""
    with_lineage = scored.select(
        "*",
        F.lit(model.name or model.uri).alias("model_name"),
        F.lit(model.version).alias("model_version"),
        F.lit(model.run_id).alias("model_run_id"),
        F.lit(batch_id).alias("batch_id"),
        F.lit(scored_at).alias("scored_at"),
        event_date().alias("event_date"),
    )
    return _conform(with_lineage, PREDICTIONS_SCHEMA)


def quarantine_rows(rejected: DataFrame, batch_id: int, quarantined_at: datetime) -> DataFrame:
    """Shape rejected records (parse output) as quarantine-table rows."""
    stamped = rejected.select(
        "*",
        F.lit(batch_id).alias("batch_id"),
        F.lit(quarantined_at).alias("quarantined_at"),
        F.lit(quarantined_at.date()).alias("quarantined_date"),
    )
    return _conform(stamped, QUARANTINE_SCHEMA)
