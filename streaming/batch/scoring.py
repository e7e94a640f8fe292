"""Batch deployment: the stream's scoring over a table, for scheduled runs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from infra.errors import first_line
from infra.profile import DataProfile
from streaming.errors import ConfigurationError
from streaming.parse.events import ParseRules, profile_flags
from streaming.parse.schema import EVENT_ID, EVENT_TIME, EventSchema
from streaming.score.identity import ModelIdentity
from streaming.score.model import LoadedModel
from streaming.sink.delta import BatchRecord, DeltaSink
from streaming.sink.tables import (
    PREDICTIONS_ADDED_LATER,
    PREDICTIONS_PARTITION,
    PREDICTIONS_SCHEMA,
    predictions_rows,
)

__all__ = [
    "BatchResult",
    "batch_app_id",
    "input_version",
    "read_input_table",
    "score_table",
    "write_batch_predictions",
]

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
        raise ConfigurationError(f"cannot read --input {path} as {chosen}: {first_line(e)}") from e


def _is_delta(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    try:
        return bool(DeltaTable.isDeltaTable(spark, path))
    except Exception:
        return False


def _as_events(
    table: DataFrame,
    schema: EventSchema,
    profile: DataProfile | None = None,
    rules: ParseRules | None = None,
) -> DataFrame:
    """Table rows shaped like parsed events: features cast to the signature, no Kafka origin,
    flagged where they are outside the model's training profile."""
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
        F.lit(None).cast("binary").alias("key_bytes"),
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
    events = table.select(*columns)
    features = F.struct(*[F.col(n) for n in schema.names])
    return events.withColumn(
        "profile_flags", profile_flags(features, schema, profile, rules or ParseRules())
    )


def score_table(
    table: DataFrame, model: LoadedModel, batch_id: int, scored_at: datetime
) -> DataFrame:
    """Predictions-table rows for every row of ``table`` (the same steps as a stream batch).

    Raises:
        ConfigurationError: the table lacks columns the model requires.
    """
    events = _as_events(table, model.schema, model.profile)
    return predictions_rows(model.score(events), model.identity, batch_id, scored_at)


@dataclass(frozen=True)
class BatchResult:
    """What one ``batch`` run did.

    Attributes:
        rows: Rows written (0 when ``skipped``).
        input_version: The version of the input that was scored (see ``input_version``).
        model: The model that scored it.
        skipped: The same input version was already scored by the same model version.
    """

    rows: int
    input_version: int
    model: ModelIdentity
    skipped: bool

    def describe(self, source: str, output: str) -> str:
        if self.skipped:
            return (
                f"{source} (version {self.input_version}) was already scored by {self.model} "
                f"into {output}; nothing written"
            )
        return f"{self.rows} predictions written to {output} by {self.model}"


def input_version(spark: SparkSession, table: DataFrame, path: str) -> int:
    """The version of an input table: its Delta version, else its files' newest modification.

    For Parquet and CSV the version is the newest modification time of the files read, in
    milliseconds, so rewriting a file makes a new version.
    """
    if _is_delta(spark, path):
        from delta.tables import DeltaTable

        row = DeltaTable.forPath(spark, path).history(1).select("version").first()
        return int(row["version"]) if row else 0
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    newest = 0
    for name in table.inputFiles():
        file_path = jvm.org.apache.hadoop.fs.Path(name)
        status = file_path.getFileSystem(conf).getFileStatus(file_path)
        newest = max(newest, int(status.getModificationTime()))
    return newest


def batch_app_id(source: str, model: ModelIdentity) -> str:
    """The Delta ``txnAppId`` of scoring ``source`` with one model version."""
    digest = hashlib.sha256(f"{source}\n{model.uri}".encode()).hexdigest()[:16]
    return f"batch-scoring:{digest}"


def write_batch_predictions(
    spark: SparkSession, source: str, table: DataFrame, model: LoadedModel, output: str
) -> BatchResult:
    """Score ``table`` (read from ``source``) and append the rows to the Delta table ``output``.

    Re-running is idempotent per input version and model version: the write carries Delta's
    ``txnAppId`` (input path and model version) and ``txnVersion`` (the input's version), so
    scoring the same input version with the same model again writes nothing, while a new input
    version or another model version is scored in full. ``batch_id`` holds the input version.

    Returns:
        What was written.
    """
    now = datetime.now(UTC).replace(tzinfo=None)
    version = input_version(spark, table, source)
    sink = DeltaSink(
        spark,
        output,
        PREDICTIONS_SCHEMA,
        PREDICTIONS_PARTITION,
        app_id=batch_app_id(source, model.identity),
        added_later=PREDICTIONS_ADDED_LATER,
    )
    sink.ensure_table()
    done = sink.last_batch()
    if done is not None and done.batch_id >= version:
        return BatchResult(0, version, model.identity, skipped=True)
    rows = score_table(table, model, version, now)
    rows_written = sink.append_counted(
        rows, BatchRecord(sink.app_id, version, model.identity.version, 0)
    )
    return BatchResult(rows_written, version, model.identity, skipped=False)
