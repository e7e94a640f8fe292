"""Parse Kafka records into model input rows; records that do not fit become quarantine rows.

Pure DataFrame transformations: nothing here talks to Kafka, Delta or MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from streaming.parse.schema import EVENT_ID, EVENT_TIME, EventSchema

__all__ = [
    "DEFAULT_MAX_VALUE_BYTES",
    "QUARANTINE_COLUMNS",
    "ErrorKind",
    "ParsedEvents",
    "judge_events",
    "parse_events",
    "rejected_rows",
    "valid_rows",
]

_KAFKA_COORDINATES = ("topic", "partition", "offset", "timestamp")
_RAW_SNIPPET = 80
# Kafka's own default largest message; a bigger value is quarantined unparsed.
DEFAULT_MAX_VALUE_BYTES = 1_048_576


class ErrorKind:
    """Values of the quarantine table's ``error_kind`` column."""

    TOMBSTONE = "tombstone"
    EMPTY_VALUE = "empty_value"
    OVERSIZED = "oversized"
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


def _string_array(values: list[str]) -> Column:
    return F.array(*[F.lit(v) for v in values]).cast("array<string>")


_CORRUPT = "_corrupt_record"


def judge_events(
    records: DataFrame, schema: EventSchema, max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
) -> DataFrame:
    """Every Kafka record with its verdict, in one pass over the values.

    Returns ``records``' columns plus ``_typed`` (the value parsed against the signature),
    ``error_kind`` and ``error_detail`` (both null for a record the model can score).

    The value is parsed once, typed. Only a record that the typed parse does not clear (not
    JSON, a field of the wrong type, a required field null or absent, no value, not UTF-8)
    is looked at again to say what is wrong with it.
    """
    json_schema = schema.json_schema()
    typed_schema = StructType([*json_schema.fields, StructField(_CORRUPT, StringType())])
    text = F.col("value").cast("string")
    size = F.octet_length(F.col("value"))
    typed = F.when(
        size <= max_value_bytes,
        F.from_json(
            text, typed_schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT}
        ),
    )
    parsed = records.select(
        "*", typed.alias("_typed"), F.is_valid_utf8(text).alias("_utf8"), size.alias("_size")
    )
    required = [n for n in schema.names if n in schema.required]
    cleared = (
        F.col("value").isNotNull()
        & F.col("_utf8")
        & F.col("_typed").isNotNull()
        & F.col(f"_typed.{_CORRUPT}").isNull()
    )
    for name in required:
        cleared = cleared & F.col("_typed")[name].isNotNull()
    # The untyped view of the value, only for the records the typed parse did not clear.
    raw_fields = F.when(
        ~cleared & (F.col("_size") <= max_value_bytes), F.from_json(text, "map<string,string>")
    )
    suspect = parsed.select("*", cleared.alias("_cleared"), raw_fields.alias("_fields"))
    raw = F.col("_fields")

    # Each check is written once over arrays of field names (higher-order functions), so the
    # generated code stays small however many features the model has.
    missing = F.filter(_string_array(required), lambda name: ~F.map_contains_key(raw, name))
    missing_detail = F.array_join(
        F.transform(missing, lambda name: F.concat(F.lit("missing field '"), name, F.lit("'"))),
        "; ",
    )
    declared = F.array(
        *[
            F.struct(
                F.lit(f.name).alias("name"),
                F.lit(f.dataType.simpleString()).alias("type"),
                F.col("_typed")[f.name].isNull().alias("untyped"),
            )
            for f in json_schema.fields
        ]
    )
    mismatched = F.filter(
        declared, lambda f: f["untyped"] & F.try_element_at(raw, f["name"]).isNotNull()
    )
    mismatch_detail = F.array_join(
        F.transform(
            mismatched,
            lambda f: F.concat(
                F.lit("field '"), f["name"], F.lit("' is not "), f["type"], F.lit(": "),
                _snippet(F.try_element_at(raw, f["name"])),
            ),
        ),
        "; ",
    )  # fmt: skip
    checked = suspect.select(
        "*",
        F.when(~F.col("_cleared"), missing_detail).alias("_missing"),
        F.when(~F.col("_cleared"), mismatch_detail).alias("_mismatch"),
    )
    error_kind = (
        F.when(F.col("_cleared"), F.lit(None).cast("string"))
        .when(F.col("value").isNull(), F.lit(ErrorKind.TOMBSTONE))
        .when(F.col("_size") == 0, F.lit(ErrorKind.EMPTY_VALUE))
        .when(F.col("_size") > max_value_bytes, F.lit(ErrorKind.OVERSIZED))
        .when(~F.col("_utf8"), F.lit(ErrorKind.INVALID_UTF8))
        .when(raw.isNull(), F.lit(ErrorKind.MALFORMED_JSON))
        .when(F.col("_missing") != "", F.lit(ErrorKind.MISSING_FIELD))
        .when(F.col("_mismatch") != "", F.lit(ErrorKind.TYPE_MISMATCH))
    )
    error_detail = (
        F.when(F.col("_cleared"), F.lit(None).cast("string"))
        .when(F.col("value").isNull(), F.lit("record has no value (a tombstone: null value)"))
        .when(F.col("_size") == 0, F.lit("value is empty (zero bytes)"))
        .when(
            F.col("_size") > max_value_bytes,
            F.format_string(
                "value has %d bytes, more than the %d allowed", "_size", F.lit(max_value_bytes)
            ),
        )
        .when(~F.col("_utf8"), F.lit("value is not valid UTF-8"))
        .when(
            raw.isNull() & F.startswith(F.ltrim(text), F.lit("{")),
            F.concat(F.lit("value is not valid JSON: "), _snippet(text)),
        )
        .when(raw.isNull(), F.concat(F.lit("value is not a JSON object: "), _snippet(text)))
        .when(F.col("_missing") != "", F.col("_missing"))
        .when(F.col("_mismatch") != "", F.col("_mismatch"))
    )
    return checked.select(
        *records.columns,
        "_typed",
        error_kind.alias("error_kind"),
        error_detail.alias("error_detail"),
    )


def _key_columns(key: Column) -> list[Column]:
    """``key`` as text every reader can open, and its raw bytes when they are not UTF-8.

    A key that is not valid UTF-8 does not stop an otherwise valid event from being scored:
    its text has each invalid sequence replaced by U+FFFD, and ``key_bytes`` keeps the bytes.
    """
    text = key.cast("string")
    return [
        F.make_valid_utf8(text).alias("key"),
        F.when(~F.is_valid_utf8(text), key).alias("key_bytes"),
    ]


def valid_rows(judged: DataFrame, schema: EventSchema) -> DataFrame:
    """The records the model can score, as typed rows (see :class:`ParsedEvents`)."""
    return judged.where(F.col("error_kind").isNull()).select(
        F.col(f"_typed.{EVENT_ID}").alias(EVENT_ID),
        *_key_columns(F.col("key")),
        F.col(f"_typed.{EVENT_TIME}").alias(EVENT_TIME),
        *[F.col("_typed")[name].alias(name) for name in schema.names],
        *_KAFKA_COORDINATES,
    )


QUARANTINE_COLUMNS = ("key", "value", *_KAFKA_COORDINATES, "error_kind", "error_detail")


def rejected_rows(judged: DataFrame) -> DataFrame:
    """The records to quarantine, raw, with their reason (see :class:`ParsedEvents`)."""
    return judged.where(F.col("error_kind").isNotNull()).select(*QUARANTINE_COLUMNS)


def parse_events(
    records: DataFrame, schema: EventSchema, max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
) -> ParsedEvents:
    """Split Kafka records (key, value, topic, partition, offset, timestamp) by whether they fit.

    A record fits when its value is UTF-8 JSON holding an object, every required feature is
    present (``null`` counts as present: a missing value for the model to impute), and every
    present field has the signature's type. Never raises on record content.

    Returns:
        The valid rows and the quarantined rows, each lazily derived from ``records``.
    """
    judged = judge_events(records, schema, max_value_bytes)
    return ParsedEvents(valid=valid_rows(judged, schema), quarantined=rejected_rows(judged))
