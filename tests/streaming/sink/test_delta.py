"""DeltaSink on real Delta tables: a column added by a later version, idempotent appends."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql.types import StructType

from streaming.errors import ConfigurationError
from streaming.sink.delta import BatchRecord, DeltaSink
from streaming.sink.tables import (
    PREDICTIONS_ADDED_LATER,
    PREDICTIONS_PARTITION,
    PREDICTIONS_SCHEMA,
)


def sink(spark: SparkSession, path: Path) -> DeltaSink:
    return DeltaSink(
        spark,
        str(path),
        PREDICTIONS_SCHEMA,
        PREDICTIONS_PARTITION,
        app_id="q:predictions",
        added_later=PREDICTIONS_ADDED_LATER,
    )


def test_ensure_table_says_whether_it_created_the_table(
    spark: SparkSession, tmp_path: Path
) -> None:
    # The service's start check reads the newest batch only of a table that existed.
    table = sink(spark, tmp_path / "p")

    assert table.ensure_table() is True
    assert table.ensure_table() is False
    assert table.last_batch() is None


def test_a_table_from_before_key_bytes_gets_the_column(spark: SparkSession, tmp_path: Path) -> None:
    older = StructType([f for f in PREDICTIONS_SCHEMA.fields if f.name != "key_bytes"])
    spark.createDataFrame([], older).write.format("delta").partitionBy("event_date").save(
        str(tmp_path / "p")
    )

    assert sink(spark, tmp_path / "p").ensure_table() is False

    columns = spark.read.format("delta").load(str(tmp_path / "p")).columns
    assert "key_bytes" in columns


def test_a_table_that_is_not_ours_is_refused(spark: SparkSession, tmp_path: Path) -> None:
    spark.range(3).write.format("delta").save(str(tmp_path / "other"))
    with pytest.raises(ConfigurationError, match="exists without columns"):
        sink(spark, tmp_path / "other").ensure_table()


def test_an_append_of_a_batch_already_written_is_skipped(
    spark: SparkSession, tmp_path: Path
) -> None:
    table = sink(spark, tmp_path / "p")
    table.ensure_table()
    rows = spark.createDataFrame([], PREDICTIONS_SCHEMA)
    table.append(rows, BatchRecord("q:predictions", 3, "1"))
    table.append(rows, BatchRecord("q:predictions", 3, "1"))

    history = spark.sql(f"DESCRIBE HISTORY delta.`{tmp_path / 'p'}`").collect()
    assert len([h for h in history if h.operation == "WRITE"]) == 1
    assert table.has_batch(3) and not table.has_batch(4)
    assert table.last_batch() == BatchRecord("q:predictions", 3, "1")
