"""Idempotent appends to a Delta table, one commit per micro-batch.

Each append carries a ``userMetadata`` record of the batch (writer, batch id, model version), so
that at start the tables can be checked against the checkpoint. A guarded append also carries
Delta's ``txnAppId``/``txnVersion`` (the writer and the batch id), so that Delta itself skips a
batch already committed. The guard reads the table's transaction state, which Delta computes
from the whole snapshot (a Spark job per commit, ~0.6 s here): the service guards the batches
a restart may re-run, and knows on its own that a batch it planned itself is new.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from delta.tables import DeltaTable
from pyspark.errors import PySparkException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from infra.errors import first_line
from streaming.errors import ConfigurationError
from streaming.sink.tables import (
    PREDICTIONS_ADDED_LATER,
    PREDICTIONS_PARTITION,
    PREDICTIONS_PROPERTIES,
    PREDICTIONS_SCHEMA,
    QUARANTINE_PARTITION,
    QUARANTINE_PROPERTIES,
    QUARANTINE_SCHEMA,
)

__all__ = [
    "BatchRecord",
    "DeltaSink",
    "check_table_location",
    "output_tables",
    "read_table",
]

log = logging.getLogger(__name__)
# The newest commits are read first; the deeper window only when none of them is this writer's
# (another writer, e.g. a compaction, committed since). Reading history costs per commit read.
_HISTORY_WINDOWS = (8, 200)
# Delta's session setting for a DML command's (MERGE's) commit metadata; the write option
# ``userMetadata`` applies to DataFrame writes only.
_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


@contextmanager
def _session_conf(spark: SparkSession, values: Mapping[str, str]) -> Iterator[None]:
    """Set session settings for one command, then put the earlier values back."""
    before = {key: spark.conf.get(key, None) for key in values}
    for key, value in values.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, old in before.items():
            if old is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, old)


@dataclass(frozen=True)
class BatchRecord:
    """What one committed micro-batch wrote, as recorded in its commit's ``userMetadata``."""

    app_id: str
    batch_id: int
    model_version: str | None
    rows: int | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "app_id": self.app_id,
                "batch_id": self.batch_id,
                "model_version": self.model_version,
                "rows": self.rows,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | None) -> BatchRecord | None:
        try:
            data: dict[str, Any] = json.loads(text or "")
            return cls(
                app_id=str(data["app_id"]),
                batch_id=int(data["batch_id"]),
                model_version=data.get("model_version"),
                rows=None if data.get("rows") is None else int(data["rows"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file:")


def check_table_location(path: str) -> None:
    """Fail early when a local table path cannot hold a table (before Spark starts).

    Raises:
        ConfigurationError: the path, or a folder on the way to it, is a file; or the nearest
            existing folder is not writable.
    """
    if not _is_local(path):
        return
    local = Path(path.removeprefix("file:")).absolute()
    anchor = local
    while not anchor.exists():
        anchor = anchor.parent
    if not anchor.is_dir():
        raise ConfigurationError(f"cannot use {path} as a table: {anchor} is a file, not a folder")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise ConfigurationError(f"cannot write table {path}: no write permission on {anchor}")


def read_table(spark: SparkSession, path: str) -> DataFrame:
    """The Delta table at ``path``.

    Raises:
        ConfigurationError: there is no Delta table there.
    """
    if not DeltaTable.isDeltaTable(spark, path):
        raise ConfigurationError(f"no Delta table at {path}")
    return spark.read.format("delta").load(path)


class DeltaSink:
    """One Delta table written by one streaming query.

    Args:
        spark: The session.
        path: Table location (a local folder or an object-store URI).
        schema: The table's columns.
        partition_by: Partition columns.
        app_id: The writer's Delta ``txnAppId``; one per query and table.
        properties: Delta table properties set at creation.
        added_later: Columns a table created by an earlier version may lack; they are added.
    """

    def __init__(
        self,
        spark: SparkSession,
        path: str,
        schema: StructType,
        partition_by: Sequence[str],
        app_id: str,
        properties: dict[str, str] | None = None,
        added_later: Sequence[str] = (),
    ) -> None:
        self.spark = spark
        # A relative local path is taken from the working directory, as a user means it; Delta's
        # SQL builder would read a bare name as a table in a schema.
        self.path = str(Path(path).resolve()) if "://" not in path else path
        self.schema = schema
        self.partition_by = tuple(partition_by)
        self.app_id = app_id
        self.added_later = tuple(added_later)
        self.properties = {"delta.enableDeletionVectors": "false", **(properties or {})}

    def ensure_table(self) -> bool:
        """Create the table if it does not exist, and check an existing one has our columns.

        Returns:
            Whether this call created it (``False``: it existed, with our columns now).

        Raises:
            ConfigurationError: the location is not writable or holds an incompatible table.
        """
        check_table_location(self.path)
        try:
            if DeltaTable.isDeltaTable(self.spark, self.path):
                existing = DeltaTable.forPath(self.spark, self.path).toDF().schema
                missing = [
                    f.name for f in self.schema.fields if f.name not in existing.fieldNames()
                ]
                if missing and set(missing) <= set(self.added_later):
                    self._add_columns(missing)
                elif missing:
                    raise ConfigurationError(
                        f"table {self.path} exists without columns {missing}: "
                        "point the option at a new path or at a table this service created"
                    )
                return False
            builder = (
                DeltaTable.createIfNotExists(self.spark)
                .location(self.path)
                .addColumns(self.schema)
                .partitionedBy(*self.partition_by)
            )
            for key, value in self.properties.items():
                builder = builder.property(key, value)
            builder.execute()
            return True
        except PySparkException as e:
            raise ConfigurationError(
                f"cannot create Delta table at {self.path}: {first_line(e)}"
            ) from e

    def _add_columns(self, names: Sequence[str]) -> None:
        """Add columns a newer version of the table has (nullable: old rows read as null)."""
        fields = {f.name: f for f in self.schema.fields}
        columns = ", ".join(f"`{n}` {fields[n].dataType.simpleString()}" for n in names)
        self.spark.sql(f"ALTER TABLE delta.`{self.path}` ADD COLUMNS ({columns})")
        log.info("table %s: added columns %s", self.path, ", ".join(names))

    def append(self, rows: DataFrame, record: BatchRecord, guarded: bool = True) -> None:
        """Append ``rows`` as batch ``record.batch_id``, one commit.

        Args:
            guarded: Delta skips the append when this writer already committed the batch (or
                a later one), and a concurrent commit of it fails this one. Unguarded, the
                caller must know the batch is new to the table. An append of no rows is a
                commit either way, as long as the session does not skip empty commits (the
                project's sessions do not: ``infra.spark.DELTA_CONF``).

        Raises:
            Whatever Delta raises: an I/O failure fails the batch, and the query resumes from
            the checkpoint on restart.
        """
        writer = rows.write.format("delta").mode("append")
        if guarded:
            writer = writer.option("txnAppId", self.app_id).option("txnVersion", record.batch_id)
        writer.option("userMetadata", record.to_json()).save(self.path)

    def insert_new(
        self,
        rows: DataFrame,
        record: BatchRecord,
        keys: Sequence[str],
        within: Column | None = None,
    ) -> int:
        """Insert the ``rows`` whose ``keys`` the table does not hold yet, as batch
        ``record.batch_id``, one commit (an insert-only Delta MERGE).

        A row already in the table is not inserted again, whichever batch or writer put it
        there: this is what makes a re-emitted record land once. ``rows`` must hold one row per
        key (the MERGE inserts every source row that matches nothing).

        Args:
            within: A predicate on the table's columns (``t.``-qualified names) that every row
                matching one of ``rows`` satisfies, e.g. its partitions and offset ranges:
                Delta reads only the files that may satisfy it instead of the whole table.

        An insert-only MERGE removes no file, so Delta allows it on a ``delta.appendOnly``
        table. It carries no transaction id: the keys make it idempotent on their own.

        Returns:
            The rows inserted.

        Raises:
            Whatever Delta raises (an I/O failure; a concurrent writer that added files the
            MERGE read fails it with a ``ConcurrentAppendException``): the batch fails and
            the query resumes from its checkpoint.
        """
        spark = rows.sparkSession
        condition = None
        for key in keys:
            equal = F.col(f"t.`{key}`") == F.col(f"s.`{key}`")
            condition = equal if condition is None else condition & equal
        assert condition is not None, "no keys"
        if within is not None:
            condition = condition & within
        settings = {_USER_METADATA: record.to_json()}
        # The setting belongs to the stream's own session (foreachBatch runs every batch on
        # one thread), and is put back before anything else runs on it.
        with _session_conf(spark, settings):
            result = (
                DeltaTable.forPath(spark, self.path)
                .alias("t")
                .merge(rows.alias("s"), condition)
                .whenNotMatchedInsertAll()
                .execute()
                .collect()
            )
        return int(result[0]["num_inserted_rows"]) if result else 0

    def append_counted(self, rows: DataFrame, record: BatchRecord) -> int:
        """Append like :meth:`append` and return the rows written, from the commit's metrics.

        No separate count: the figure is the ``numOutputRows`` Delta recorded for the commit.
        The ``rows`` of ``record`` is left as given (the commit is written before it is known).
        """
        self.append(rows, record)
        history = DeltaTable.forPath(self.spark, self.path).history(1).first()
        metrics = (history["operationMetrics"] or {}) if history else {}
        return int(metrics.get("numOutputRows", 0))

    def has_batch(self, batch_id: int) -> bool:
        """Whether this writer already committed batch ``batch_id`` (or a later one)."""
        last = self.last_batch()
        return last is not None and last.batch_id >= batch_id

    def last_batch(self) -> BatchRecord | None:
        """The newest batch this writer committed to the table, or ``None``."""
        if not DeltaTable.isDeltaTable(self.spark, self.path):
            return None
        table = DeltaTable.forPath(self.spark, self.path)
        for depth in _HISTORY_WINDOWS:
            rows = (
                table.history(depth)
                .select("version", "userMetadata")
                .orderBy("version", ascending=False)
                .collect()
            )
            for row in rows:
                record = BatchRecord.from_json(row.userMetadata)
                if record is not None and record.app_id == self.app_id:
                    return record
            if len(rows) < depth:  # the whole history was read
                break
        return None


def output_tables(
    spark: SparkSession, predictions_table: str, quarantine_table: str, app_id: str
) -> tuple[DeltaSink, DeltaSink]:
    """The predictions and the quarantine table of a writer, each with its own writer id
    (``<app_id>:predictions``, ``<app_id>:quarantine``), schema, partitioning and properties."""
    predictions = DeltaSink(
        spark,
        predictions_table,
        PREDICTIONS_SCHEMA,
        PREDICTIONS_PARTITION,
        app_id=f"{app_id}:predictions",
        properties=PREDICTIONS_PROPERTIES,
        added_later=PREDICTIONS_ADDED_LATER,
    )
    quarantine = DeltaSink(
        spark,
        quarantine_table,
        QUARANTINE_SCHEMA,
        QUARANTINE_PARTITION,
        app_id=f"{app_id}:quarantine",
        properties=QUARANTINE_PROPERTIES,
    )
    return predictions, quarantine
