"""Reading one day's partition of a predictions table before and after its compaction.

The table is created as the service creates it (``DeltaSink.ensure_table`` with the service's
schema, partitioning and properties), then filled the way a stream of micro-batches leaves it:
many small appends, one commit and one file each. The appends are written with delta-rs
(~40 ms each, where Spark's ``DeltaSink.append`` takes ~0.4 s); they are the same kind of
commits and files (one snappy Parquet file per append, statistics in the log, a checkpoint every
100 commits, as the table's property says). Each reader then reads one day in full, the table is
compacted with ``streaming.sink.maintenance.compact`` (Delta OPTIMIZE with Spark), and each
reader reads the day again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyspark.sql import Observation, SparkSession
from pyspark.sql import functions as F

from benchmarks.duckdb_delta import duckdb_with_delta
from benchmarks.figures import READERS, PartitionRead, TableCompaction, recording_failure
from benchmarks.polling import say
from streaming.sink.delta import DeltaSink
from streaming.sink.maintenance import compact
from streaming.sink.tables import PREDICTIONS_PARTITION, PREDICTIONS_PROPERTIES, PREDICTIONS_SCHEMA

__all__ = [
    "DAY",
    "DEFAULT_APPENDS",
    "OTHER_DAY_APPENDS",
    "READS_AFTER_FIRST",
    "ROWS_PER_APPEND",
    "build_table",
    "measure_read_time",
]

DAY = date(2026, 11, 24)
DEFAULT_APPENDS = 400  # about a minute for the whole section on 2 busy cores
OTHER_DAY_APPENDS = 5
ROWS_PER_APPEND = 250
READS_AFTER_FIRST = 3  # the fastest of these is reported, the first read apart
_MODEL_RUN_ID = "5f0c1d2e3a4b4c6d8e9f0a1b2c3d4e5f"
_KEYS = 5000

# Reads one day of the table at a path in full; returns the rows read.
Reader = Callable[[str, date], int]


def _day_filter(day: date) -> list[tuple[str, str, date]]:
    return [("event_date", "=", day)]


def _timestamps(micros: np.ndarray) -> pa.Array:
    return pa.array(micros, type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))


def _append_rows(
    schema: pa.Schema, batch_id: int, day: date, first_offset: int, rows: int
) -> pa.Table:
    """One micro-batch of predictions rows, as ``predictions_rows`` shapes them: offsets
    alternate between two Kafka partitions, event times 100 ms apart within ``day``."""
    offsets = np.arange(first_offset, first_offset + rows, dtype=np.int64)
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    event_us = int(midnight.timestamp() * 1e6) + offsets * 100_000
    scored_us = int(event_us[-1]) + 1_000_000
    rng = np.random.default_rng(batch_id)
    columns = {
        "event_id": [f"e-{o}" for o in offsets],
        "key": [f"listing-{o % _KEYS}" for o in offsets],
        "key_bytes": pa.nulls(rows, pa.binary()),
        "event_time": _timestamps(event_us),
        "prediction": rng.uniform(20.0, 400.0, rows),
        "profile_flags": pa.nulls(rows, pa.string()),
        "model_name": ["listings-price"] * rows,
        "model_version": ["1"] * rows,
        "model_run_id": [_MODEL_RUN_ID] * rows,
        "topic": ["listings"] * rows,
        "partition": pa.array(offsets % 2, type=pa.int32()),
        "offset": offsets,
        "timestamp": _timestamps(event_us + 50_000),
        "batch_id": [batch_id] * rows,
        "scored_at": _timestamps(np.full(rows, scored_us)),
        "event_date": [day] * rows,
    }
    return pa.table(columns, schema=schema)


def build_table(spark: SparkSession, path: str, appends: int, rows_per_append: int) -> float:
    """Create the predictions table at ``path`` as the service does, then append to it.

    ``appends`` appends go to ``DAY`` and ``OTHER_DAY_APPENDS`` to the day after.

    Returns:
        Seconds the appends took (not the creation).

    Raises:
        Whatever Spark or delta-rs raise.
    """
    from deltalake import DeltaTable, write_deltalake

    DeltaSink(
        spark,
        path,
        PREDICTIONS_SCHEMA,
        PREDICTIONS_PARTITION,
        app_id="benchmark:predictions",
        properties=PREDICTIONS_PROPERTIES,
    ).ensure_table()
    table = DeltaTable(path)
    schema = pa.schema(table.schema().to_arrow())
    days = [DAY] * appends + [DAY + timedelta(days=1)] * OTHER_DAY_APPENDS
    started = time.perf_counter()
    for batch_id, day in enumerate(days):
        first_offset = batch_id * rows_per_append
        rows = _append_rows(schema, batch_id, day, first_offset, rows_per_append)
        write_deltalake(table, rows, mode="append")
    return time.perf_counter() - started


def _day_files(path: str, day: date) -> int:
    from deltalake import DeltaTable

    return len(DeltaTable(path).file_uris(file_pruning_predicate=_day_filter(day)))


def _delta_rs(spark: SparkSession) -> Reader:
    from deltalake import DeltaTable

    def read(path: str, day: date) -> int:
        return DeltaTable(path).to_pyarrow_table(filters=_day_filter(day)).num_rows

    return read


def _duckdb(spark: SparkSession) -> Reader:
    connection = duckdb_with_delta()  # loading the extension is not part of a read

    def read(path: str, day: date) -> int:
        query = f"SELECT * FROM delta_scan('{path}') WHERE event_date = DATE '{day.isoformat()}'"
        return connection.sql(query).fetch_arrow_table().num_rows

    return read


def _polars(spark: SparkSession) -> Reader:
    import polars as pl

    def read(path: str, day: date) -> int:
        return pl.scan_delta(path).filter(pl.col("event_date") == day).collect().height

    return read


def _spark(spark: SparkSession) -> Reader:
    def read(path: str, day: date) -> int:
        # Every column of every row, written nowhere (the noop sink); the rows are counted in
        # the same job.
        rows = Observation("rows")
        day_rows = spark.read.format("delta").load(path).where(F.col("event_date") == day)
        observed = day_rows.observe(rows, F.count(F.lit(1)).alias("rows"))
        observed.write.format("noop").mode("overwrite").save()
        return int(rows.get["rows"])

    return read


_READERS: dict[str, Callable[[SparkSession], Reader]] = {
    "delta-rs": _delta_rs,
    "duckdb": _duckdb,
    "polars": _polars,
    "spark": _spark,
}


def _time_reads(read: Reader, path: str, expected: int, reads: int) -> tuple[float, float]:
    """The first read's seconds and the fastest of the next ``reads``.

    Raises:
        ValueError: a read returned another number of rows than ``expected``.
    """
    seconds = []
    for _ in range(1 + reads):
        started = time.perf_counter()
        rows = read(path, DAY)
        seconds.append(time.perf_counter() - started)
        if rows != expected:
            raise ValueError(f"read {rows:,} rows of {DAY}, expected {expected:,}")
    return seconds[0], min(seconds[1:])


def measure_read_time(
    spark: SparkSession,
    folder: Path,
    appends: int,
    rows_per_append: int = ROWS_PER_APPEND,
    reads: int = READS_AFTER_FIRST,
) -> tuple[TableCompaction, list[PartitionRead]]:
    """Build the table in ``folder``, read ``DAY`` with every reader, compact, read again.

    Each reader reads once, then ``reads`` more times, before and after.

    Returns:
        The table's figure and one figure per reader (in ``READERS`` order; none when the
        table could not be built). A failure is recorded in the figure it concerns; a reader
        that failed before the compaction is not tried after it.
    """
    compaction = TableCompaction(appends, OTHER_DAY_APPENDS, rows_per_append, reads)
    path = str(folder / "predictions")
    section_started = time.monotonic()
    say(f"read time: {appends} appends of {rows_per_append} rows (+{OTHER_DAY_APPENDS} next day)")
    with recording_failure(compaction):
        compaction.write_seconds = build_table(spark, path, appends, rows_per_append)
    if compaction.failed:
        return compaction, []
    expected = appends * rows_per_append
    files_before = _day_files(path, DAY)
    figures = [PartitionRead(name, files_before=files_before) for name in READERS]
    readers: dict[str, Reader] = {}
    for figure in figures:
        with recording_failure(figure):
            readers[figure.reader] = _READERS[figure.reader](spark)
            figure.first_before_s, figure.best_before_s = _time_reads(
                readers[figure.reader], path, expected, reads
            )
            figure.rows = expected
    say("read time: compacting")
    with recording_failure(compaction):
        started = time.perf_counter()
        result = compact(spark, path)
        compaction.seconds = time.perf_counter() - started
        compaction.files_removed = result.files_removed
        compaction.files_added = result.files_added
    if compaction.failed:
        return compaction, figures
    files_after = _day_files(path, DAY)
    for figure in figures:
        figure.files_after = files_after
        if figure.failed:
            continue
        with recording_failure(figure):
            figure.first_after_s, figure.best_after_s = _time_reads(
                readers[figure.reader], path, expected, reads
            )
    say(f"read time: done in {time.monotonic() - section_started:.0f}s")
    return compaction, figures
