"""Batch deployment: the stream's scoring over a table, for scheduled runs."""

from __future__ import annotations

from datetime import UTC, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from streaming.delta_sink import BatchRecord, DeltaSink
from streaming.errors import ConfigurationError
from streaming.event_schema import EVENT_ID, EVENT_TIME, EventSchema
from streaming.model_provider import LoadedModel
from streaming.tables import PREDICTIONS_PARTITION, PREDICTIONS_SCHEMA, predictions_rows

__all__ = ["read_input_table", "score_table", "write_batch_predictions"]

_KAFKA_DEFAULTS = {"topic": "string", "partition": "int", "offset": "bigint"}


def read_input_table(spark: SparkSession, path: str, fmt: str | None = None) -> DataFrame:
    """Read a Delta, Parquet or CSV table (format guessed from the path when not given).

    Raises:
        ConfigurationError: the path does not exist or is not readable as that format.
    """
    chosen = fmt or (
        "delta" if _is_delta(spark, path) else "csv" if path.endswith(".csv") else "parquet"
    )
    reader = spark.read.format(chosen)
    if chosen == "csv":
        reader = reader.option("header", "true").option("inferSchema", "true")
    try:
        return reader.load(path)
    except Exception as e:
        raise ConfigurationError(
            f"cannot read --input {path} as {chosen}: {str(e).splitlines()[0]}"
        ) from e


def _is_delta(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    try:
        return bool(DeltaTable.isDeltaTable(spark, path))
    except Exception:
        return False


def _as_events(table: DataFrame, schema: EventSchema) -> DataFrame:
    """Table rows shaped like parsed events: features cast to the signature, no Kafka origin."""
    missing = [n for n in schema.names if n in schema.required and n not in table.columns]
    if missing:
        raise ConfigurationError(f"input table lacks the model's required columns {missing}")
    columns = [
        (
            F.col(EVENT_ID).cast("string")
            if EVENT_ID in table.columns
            else F.lit(None).cast("string")
        ).alias(EVENT_ID),
        (
            F.col("key").cast("string") if "key" in table.columns else F.lit(None).cast("string")
        ).alias("key"),
        (
            F.col(EVENT_TIME).cast("timestamp")
            if EVENT_TIME in table.columns
            else F.lit(None).cast("timestamp")
        ).alias(EVENT_TIME),
    ]
    for field in schema.features.fields:
        source = F.col(field.name) if field.name in table.columns else F.lit(None)
        columns.append(source.cast(field.dataType).alias(field.name))
    columns += [F.lit(None).cast(t).alias(n) for n, t in _KAFKA_DEFAULTS.items()]
    columns.append(F.current_timestamp().alias("timestamp"))
    return table.select(*columns)


def score_table(
    table: DataFrame, model: LoadedModel, run_id: int, scored_at: datetime
) -> DataFrame:
    """Predictions-table rows for every row of ``table`` (the same steps as a stream batch).

    Raises:
        ConfigurationError: the table lacks columns the model requires.
    """
    events = _as_events(table, model.schema)
    return predictions_rows(model.score(events), model.identity, run_id, scored_at)


def write_batch_predictions(
    spark: SparkSession, table: DataFrame, model: LoadedModel, output: str
) -> int:
    """Score ``table`` and append the rows to the Delta table ``output``.

    Returns:
        The number of rows written.
    """
    now = datetime.now(UTC).replace(tzinfo=None)
    run_id = int(now.timestamp() * 1000)
    sink = DeltaSink(
        spark, output, PREDICTIONS_SCHEMA, PREDICTIONS_PARTITION, app_id="batch-scoring"
    )
    sink.ensure_table()
    rows = score_table(table, model, run_id, now).persist()
    try:
        count = rows.count()
        sink.append(rows, BatchRecord(sink.app_id, run_id, model.identity.version, count))
    finally:
        rows.unpersist()
    return count
