"""Parse Kafka records into model input rows; records that do not fit become quarantine rows.

Pure DataFrame transformations: nothing here talks to Kafka, Delta or MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from streaming.event_schema import EVENT_ID, EVENT_TIME, EventSchema

__all__ = ["ErrorKind", "ParsedEvents", "parse_events"]

_KAFKA_COORDINATES = ("topic", "partition", "offset", "timestamp")
_RAW_SNIPPET = 80


class ErrorKind:
    """Values of the quarantine table's ``error_kind`` column."""

    EMPTY_VALUE = "empty_value"
    INVALID_UTF8 = "invalid_utf8"
    MALFORMED_JSON = "malformed_json"
    MISSING_FIELD = "missing_field"
    TYPE_MISMATCH = "type_mismatch"


@dataclass(frozen=True)
class ParsedEvents:
    """The two sides of a parse: rows the model can score and rows to quarantine.

    ``valid``: event_id, key, event_time, the feature columns, topic, partition, offset,
    timestamp. ``quarantined``: key and value (raw bytes), topic, partition, offset,
    timestamp, error_kind, error_detail.
    """

    valid: DataFrame
    quarantined: DataFrame


def _snippet(column: Column) -> Column:
    return F.when(
        F.length(column) > _RAW_SNIPPET, F.concat(F.substring(column, 1, 77), F.lit("..."))
    ).otherwise(column)


def parse_events(records: DataFrame, schema: EventSchema) -> ParsedEvents:
    """Split Kafka records (key, value, topic, partition, offset, timestamp) by whether they fit.

    A record fits when its value is UTF-8 JSON holding an object, every required feature is
    present (``null`` counts as present: a missing value for the model to impute), and every
    present field has the signature's type. Never raises on record content.

    Returns:
        The valid rows and the quarantined rows, each lazily derived from ``records``.
    """
    json_schema = schema.json_schema()
    text = F.col("value").cast("string")
    parsed = records.select(
        "*",
        F.from_json(text, "map<string,string>").alias("_fields"),
        F.from_json(text, json_schema, {"mode": "PERMISSIVE"}).alias("_typed"),
    )

    missing = [
        F.when(~F.map_contains_key("_fields", name), F.lit(f"missing field '{name}'"))
        for name in schema.names
        if name in schema.required
    ]
    mismatched = [
        F.when(
            F.col("_fields")[field.name].isNotNull() & F.col("_typed")[field.name].isNull(),
            F.concat(
                F.lit(f"field '{field.name}' is not {field.dataType.simpleString()}: "),
                _snippet(F.col("_fields")[field.name]),
            ),
        )
        for field in json_schema.fields
    ]
    missing_detail = F.concat_ws("; ", *missing) if missing else F.lit("")
    mismatch_detail = F.concat_ws("; ", *mismatched)

    error_kind = (
        F.when(F.col("value").isNull(), F.lit(ErrorKind.EMPTY_VALUE))
        .when(~F.is_valid_utf8(text), F.lit(ErrorKind.INVALID_UTF8))
        .when(F.col("_fields").isNull(), F.lit(ErrorKind.MALFORMED_JSON))
        .when(missing_detail != "", F.lit(ErrorKind.MISSING_FIELD))
        .when(mismatch_detail != "", F.lit(ErrorKind.TYPE_MISMATCH))
    )
    error_detail = (
        F.when(F.col("value").isNull(), F.lit("record has no value (tombstone or null)"))
        .when(~F.is_valid_utf8(text), F.lit("value is not valid UTF-8"))
        .when(
            F.col("_fields").isNull(),
            F.concat(F.lit("value is not a JSON object: "), _snippet(text)),
        )
        .when(missing_detail != "", missing_detail)
        .when(mismatch_detail != "", mismatch_detail)
    )
    judged = parsed.select("*", error_kind.alias("error_kind"), error_detail.alias("error_detail"))

    valid = judged.where(F.col("error_kind").isNull()).select(
        F.col(f"_typed.{EVENT_ID}").alias(EVENT_ID),
        F.col("key").cast("string").alias("key"),
        F.col(f"_typed.{EVENT_TIME}").alias(EVENT_TIME),
        *[F.col("_typed")[name].alias(name) for name in schema.names],
        *_KAFKA_COORDINATES,
    )
    quarantined = judged.where(F.col("error_kind").isNotNull()).select(
        "key", "value", *_KAFKA_COORDINATES, "error_kind", "error_detail"
    )
    return ParsedEvents(valid=valid, quarantined=quarantined)
