"""The readers docs/tables.md shows, each on one real predictions table holding two days.

Each reader below makes the calls of its snippet under "Reading the tables": every reader returns
the same rows, a day's partition is read alone, and the change data feed, once enabled, reads
the same changes through Spark and delta-rs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from streaming.sink.delta import DeltaSink
from streaming.sink.tables import PREDICTIONS_PARTITION, PREDICTIONS_SCHEMA
from tests.streaming.sink.conftest import append_predictions
from tests.support import duckdb_with_delta

DAY_1, DAY_2 = date(2026, 11, 25), date(2026, 11, 26)
# (batch id, offsets, event time): the last batch brings late events of the first day.
BATCHES = (
    (0, range(0, 4), datetime(2026, 11, 25, 12, 0)),
    (1, range(4, 8), datetime(2026, 11, 26, 9, 30)),
    (2, range(8, 10), datetime(2026, 11, 25, 23, 59, 59)),
)
COLUMNS = (
    "event_id",
    "key",
    "event_time",
    "prediction",
    "model_version",
    "partition",
    "offset",
    "batch_id",
    "event_date",
)
OFFSET, BATCH_ID = COLUMNS.index("offset"), COLUMNS.index("batch_id")
Row = tuple[Any, ...]


def _plain(value: object) -> object:
    """A value as every reader can be compared on: an instant as an aware UTC datetime.

    PySpark returns naive datetimes in the local time of the Python process, which
    ``astimezone`` assumes for a naive one; the others return aware ones.
    """
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def _rows(records: Iterable[Mapping[str, Any]], columns: Sequence[str] = COLUMNS) -> list[Row]:
    return sorted(tuple(_plain(record[c]) for c in columns) for record in records)


def _expected(day: date | None = None, batches: Sequence[int] = (0, 1, 2)) -> list[Row]:
    """The rows ``append_predictions`` wrote for ``batches`` (of ``day`` only, when given)."""
    return sorted(
        (f"e-{o}", f"k-{o}", _plain(at), float(o), "1", o % 2, o, batch_id, at.date())
        for batch_id, offsets, at in BATCHES
        if batch_id in batches and (day is None or at.date() == day)
        for o in offsets
    )


# One function per reader: the calls of its snippet in docs/tables.md; ``day`` adds its filter.
def spark_dataframe(spark: SparkSession, path: str, day: date | None) -> list[Row]:
    predictions = spark.read.format("delta").load(path)
    if day is not None:
        predictions = predictions.where(F.col("event_date") == day)
    return _rows(r.asDict() for r in predictions.collect())


def spark_sql(spark: SparkSession, path: str, day: date | None) -> list[Row]:
    where = "" if day is None else f" WHERE event_date = DATE '{day.isoformat()}'"
    return _rows(r.asDict() for r in spark.sql(f"SELECT * FROM delta.`{path}`{where}").collect())


def _day_filter(day: date | None) -> list[tuple[str, str, Any]] | None:
    return None if day is None else [("event_date", "=", day)]


def delta_rs_pyarrow(spark: SparkSession, path: str, day: date | None) -> list[Row]:
    return _rows(DeltaTable(path).to_pyarrow_table(filters=_day_filter(day)).to_pylist())


def delta_rs_pandas(spark: SparkSession, path: str, day: date | None) -> list[Row]:
    return _rows(DeltaTable(path).to_pandas(filters=_day_filter(day)).to_dict("records"))


def duckdb_delta_scan(spark: SparkSession, path: str, day: date | None) -> list[Row]:
    where = "" if day is None else f" WHERE event_date = DATE '{day.isoformat()}'"
    result = duckdb_with_delta().sql(f"SELECT * FROM delta_scan('{path}'){where}")
    return _rows(dict(zip(result.columns, row, strict=True)) for row in result.fetchall())


def polars_read_delta(spark: SparkSession, path: str, day: date | None) -> list[Row]:
    if day is None:
        return _rows(pl.read_delta(path).to_dicts())
    day_rows = pl.scan_delta(path).filter(pl.col("event_date") == day).collect()
    return _rows(day_rows.to_dicts())


Reader = Callable[[SparkSession, str, date | None], list[Row]]
READERS: tuple[Reader, ...] = (
    spark_dataframe,
    spark_sql,
    delta_rs_pyarrow,
    delta_rs_pandas,
    duckdb_delta_scan,
    polars_read_delta,
)


# What a user runs to have the change data feed on a table of the service (docs/tables.md).
ENABLE_CHANGE_DATA_FEED = (
    "ALTER TABLE delta.`{}` SET TBLPROPERTIES (delta.enableChangeDataFeed = true)"
)


@pytest.fixture(scope="module")
def predictions(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A predictions table as the service creates it (append-only), holding two days.

    After its first batch a user enabled the change data feed, as docs/tables.md says.
    """
    path = str(tmp_path_factory.mktemp("readers") / "predictions")
    sink = DeltaSink(
        spark,
        path,
        PREDICTIONS_SCHEMA,
        PREDICTIONS_PARTITION,
        app_id="q:predictions",
        properties={"delta.appendOnly": "true"},
    )
    sink.ensure_table()
    for batch_id, offsets, at in BATCHES:
        append_predictions(spark, sink, batch_id, offsets, at)
        if batch_id == 0:
            spark.sql(ENABLE_CHANGE_DATA_FEED.format(path))
    return path


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.__name__)
def test_every_reader_returns_every_row(
    spark: SparkSession, predictions: str, reader: Reader
) -> None:
    assert reader(spark, predictions, None) == _expected()


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.__name__)
def test_every_reader_reads_one_day_alone(
    spark: SparkSession, predictions: str, reader: Reader
) -> None:
    assert [r[OFFSET] for r in _expected(DAY_1)] == [0, 1, 2, 3, 8, 9]  # the late batch is day 1's
    assert reader(spark, predictions, DAY_1) == _expected(DAY_1)
    assert reader(spark, predictions, DAY_2) == _expected(DAY_2)


def _in_table(uri: str) -> str:
    """A data file as ``event_date=…/part-….parquet``, whichever way a reader spells its URI."""
    return "/".join(uri.split("/")[-2:])


def test_a_days_read_opens_only_that_days_files(spark: SparkSession, predictions: str) -> None:
    every_file = {_in_table(u) for u in DeltaTable(predictions).file_uris()}
    day_files = {
        _in_table(u)
        for u in DeltaTable(predictions).file_uris(
            file_pruning_predicate=[("event_date", "=", DAY_1)]
        )
    }
    assert day_files == {f for f in every_file if f.startswith(f"event_date={DAY_1}/")}
    assert 0 < len(day_files) < len(every_file)

    day = spark.read.format("delta").load(predictions).where(F.col("event_date") == DAY_1)
    assert {_in_table(u) for u in day.inputFiles()} == day_files

    profile = (
        duckdb_with_delta()
        .sql(
            f"EXPLAIN ANALYZE SELECT * FROM delta_scan('{predictions}') "
            f"WHERE event_date = DATE '{DAY_1.isoformat()}'"
        )
        .fetchall()[0][1]
    )
    assert f"Scanning Files: {len(day_files)}/{len(every_file)}" in profile


CHANGES = (*COLUMNS, "_change_type", "_commit_version")


def test_the_change_data_feed_once_enabled_reads_the_same_changes_in_spark_and_delta_rs(
    spark: SparkSession, predictions: str
) -> None:
    history = spark.sql(f"DESCRIBE HISTORY delta.`{predictions}`")
    (enabled_at,) = [r.version for r in history.where("operation = 'SET TBLPROPERTIES'").collect()]

    def spark_changes(starting_version: int) -> list[Row]:
        changes = (
            spark.read.format("delta")
            .option("readChangeFeed", "true")
            .option("startingVersion", starting_version)
            .load(predictions)
        )
        return _rows((r.asDict() for r in changes.collect()), CHANGES)

    by_spark = spark_changes(enabled_at)
    by_delta_rs = _rows(
        pa.table(DeltaTable(predictions).load_cdf(starting_version=enabled_at)).to_pylist(),
        CHANGES,
    )
    batch_version = {1: enabled_at + 1, 2: enabled_at + 2}
    expected = sorted((*r, "insert", batch_version[r[BATCH_ID]]) for r in _expected(batches=(1, 2)))
    assert by_spark == by_delta_rs == expected

    # Nothing before it was enabled: the service's tables do not record changes.
    with pytest.raises(AnalysisException, match="DELTA_MISSING_CHANGE_DATA"):
        spark_changes(0)
    before = DeltaTable(predictions, version=enabled_at - 1).protocol()
    after = DeltaTable(predictions).protocol()
    assert after.min_writer_version > before.min_writer_version
    assert after.min_reader_version == before.min_reader_version == 1
