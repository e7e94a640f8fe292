"""Read the real-time query's two output topics back as table rows (what ``land`` writes).

Pure DataFrame transformations: nothing here talks to Kafka, Delta or MLflow.

A predictions-topic record's value is the JSON of ``REALTIME_PREDICTION_SCHEMA`` (the
predictions table's columns but ``batch_id`` and ``event_date``); a dead-letter record is the
source record's raw key and value with ``DEAD_LETTER_HEADERS``. A record that is neither is not
dropped: it becomes a quarantine row with its own (landing) coordinates and the error kind
``malformed_prediction`` or ``malformed_dead_letter``.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from streaming.parse.events import ErrorKind, ParsedEvents
from streaming.sink.tables import (
    DEAD_LETTER_HEADERS,
    PREDICTIONS_SCHEMA,
    REALTIME_PREDICTION_SCHEMA,
    REJECTED_SCHEMA,
    SOURCE_COORDINATES,
    event_date,
)

__all__ = [
    "REQUIRED_PREDICTION_FIELDS",
    "first_per_source",
    "parse_dead_letters",
    "parse_prediction_records",
    "without_sources",
]

# A predictions record without these cannot be landed by source offset (or dated).
REQUIRED_PREDICTION_FIELDS = ("topic", "partition", "offset", "timestamp", "scored_at")
_LANDING = ("key", "value", "topic", "partition", "offset", "timestamp")


def _rejected(
    kind: Column, detail: Column, coordinates: tuple[Column, ...] | None = None
) -> Column:
    """A ``REJECTED_SCHEMA`` struct: the raw record, where it came from, and why."""
    where = coordinates or tuple(F.col(c) for c in ("topic", "partition", "offset", "timestamp"))
    values = [F.col("key"), F.col("value"), *where, kind, detail]
    return F.struct(
        *[v.cast(f.dataType).alias(f.name) for v, f in zip(values, REJECTED_SCHEMA, strict=True)]
    )


def parse_prediction_records(records: DataFrame, batch_id: int) -> ParsedEvents:
    """Split predictions-topic records into predictions-table rows and quarantine rows.

    Args:
        records: Kafka records (key, value, topic, partition, offset, timestamp) of the
            predictions topic.
        batch_id: The landing query's batch id, the rows' ``batch_id``.

    Returns:
        ``valid``: ``PREDICTIONS_SCHEMA`` rows, their Kafka columns the SOURCE record's, and
        ``event_date`` the day of ``coalesce(event_time, timestamp)`` as the service dates its
        rows. ``quarantined``: ``REJECTED_SCHEMA`` rows of the records whose value is not
        UTF-8 JSON of ``REALTIME_PREDICTION_SCHEMA`` holding every field of
        ``REQUIRED_PREDICTION_FIELDS``, with the LANDING record's coordinates and the kind
        ``malformed_prediction``. Never raises on record content.
    """
    text = F.col("value").cast("string")
    # from_json reads what it can of any text (a field it cannot read is null): whether the
    # value is a JSON object at all is asked apart.
    is_object = F.json_object_keys(text).isNotNull()
    parsed = F.from_json(text, REALTIME_PREDICTION_SCHEMA, {"mode": "PERMISSIVE"})
    missing = F.concat_ws(
        ", ", *[F.when(F.col("_p")[n].isNull(), F.lit(n)) for n in REQUIRED_PREDICTION_FIELDS]
    )
    frame = records.select(
        *_LANDING,
        F.when(F.is_valid_utf8(text) & is_object, parsed).alias("_p"),
        F.is_valid_utf8(text).alias("_utf8"),
    ).select("*", missing.alias("_missing"))
    ok = F.col("_p").isNotNull() & (F.col("_missing") == "")
    detail = (
        F.when(F.col("value").isNull(), F.lit("value is null"))
        .when(~F.col("_utf8"), F.lit("value is not valid UTF-8"))
        .when(
            F.col("_p").isNull(),
            F.lit("value is not a JSON object of the predictions record"),
        )
        .otherwise(F.concat(F.lit("predictions record without a valid "), F.col("_missing")))
    )
    # The value's own Kafka columns (the source record's) replace the landing record's.
    valid = (
        frame.where(ok)
        .select("_p.*")
        .select("*", F.lit(batch_id).alias("batch_id"), event_date().alias("event_date"))
        .select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in PREDICTIONS_SCHEMA])
    )
    quarantined = (
        frame.where(~ok)
        .select(_rejected(F.lit(ErrorKind.MALFORMED_PREDICTION), detail).alias("_r"))
        .select("_r.*")
    )
    return ParsedEvents(valid=valid, quarantined=quarantined)


def _header(name: str) -> Column:
    """The text of the first header ``name`` (null when absent), every invalid byte replaced."""
    first = F.get(F.filter("headers", lambda h: h["key"] == F.lit(name)), 0)
    return F.make_valid_utf8(first["value"].cast("string"))


def parse_dead_letters(records: DataFrame) -> DataFrame:
    """Dead-letter records as quarantine rows (``REJECTED_SCHEMA``).

    Args:
        records: Kafka records of the dead-letter topic with their ``headers``
            (``includeHeaders``): the source record's raw key and value, and
            ``DEAD_LETTER_HEADERS``.

    Returns:
        One row per record: its key and value, the SOURCE coordinates and timestamp, the
        ``error_kind`` and ``error_detail`` from the headers. A record without a usable
        ``error_kind``, ``source_topic``, ``source_partition`` or ``source_offset`` header is
        kept with its LANDING coordinates and the kind ``malformed_dead_letter``, its detail
        naming the headers at fault. Never raises on record content.
    """
    kind, detail, topic, partition, offset, stamp = (_header(n) for n in DEAD_LETTER_HEADERS)
    typed = {
        "error_kind": kind,
        "source_topic": topic,
        "source_partition": partition.try_cast("int"),
        "source_offset": offset.try_cast("long"),
    }
    bad = F.concat_ws(", ", *[F.when(v.isNull(), F.lit(n)) for n, v in typed.items()])
    source = (
        typed["source_topic"],
        typed["source_partition"],
        typed["source_offset"],
        F.try_to_timestamp(stamp),
    )
    malformed = _rejected(
        F.lit(ErrorKind.MALFORMED_DEAD_LETTER),
        F.concat(F.lit("dead-letter record without a valid header "), bad),
    )
    chosen = F.when(bad == "", _rejected(kind, detail, source)).otherwise(malformed)
    return records.select(chosen.alias("_r")).select("_r.*")


def first_per_source(rows: DataFrame, order_by: str | None = None) -> DataFrame:
    """One row per source record (``SOURCE_COORDINATES``): the first by ``order_by``.

    A record the real-time query emitted twice (after a restart) appears twice, possibly with
    a different ``scored_at``; the first scored is the one kept.
    """
    if order_by is None:
        return rows.dropDuplicates(list(SOURCE_COORDINATES))
    window = Window.partitionBy(*SOURCE_COORDINATES).orderBy(F.col(order_by).asc_nulls_last())
    return rows.withColumn("_n", F.row_number().over(window)).where(F.col("_n") == 1).drop("_n")


def without_sources(rows: DataFrame, others: DataFrame) -> DataFrame:
    """``rows`` whose source record is not among ``others`` (by ``SOURCE_COORDINATES``)."""
    keys = list(SOURCE_COORDINATES)
    return rows.join(others.select(*keys).distinct(), keys, "left_anti")
