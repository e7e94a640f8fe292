"""``python -m streaming tail``: the newest rows of the service's tables, read with delta-rs."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
from pyspark.sql import SparkSession
from pyspark.sql.types import StructType

from streaming.cli import main
from streaming.sink.delta import BatchRecord, DeltaSink
from streaming.sink.tables import (
    PREDICTIONS_PARTITION,
    PREDICTIONS_SCHEMA,
    QUARANTINE_PARTITION,
    QUARANTINE_SCHEMA,
    REJECTED_SCHEMA,
    quarantine_rows,
)
from streaming.sink.tail import TableTail
from tests.streaming.sink.conftest import AT, append_predictions


def _sink(
    spark: SparkSession, path: Path, schema: StructType, partition: tuple[str, ...]
) -> DeltaSink:
    sink = DeltaSink(spark, str(path), schema, partition, app_id=f"q:{path.name}")
    sink.ensure_table()
    return sink


def test_tail_shows_the_newest_rows_and_follows_new_batches(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    predictions = _sink(spark, tmp_path / "predictions", PREDICTIONS_SCHEMA, PREDICTIONS_PARTITION)
    for batch_id, offsets in enumerate([range(0, 6), range(6, 12), range(12, 14)]):
        append_predictions(spark, predictions, batch_id, offsets)
    quarantine = _sink(spark, tmp_path / "quarantine", QUARANTINE_SCHEMA, QUARANTINE_PARTITION)
    rejected = spark.createDataFrame(
        [(b"k", b"{not json", "listings", 0, 20, AT, "malformed_json", "value is not valid JSON"),
         (b"\xff", b"\xc3\x28", "listings", 1, 21, AT, "invalid_utf8", "value is not valid UTF-8")],
        REJECTED_SCHEMA,
    )  # fmt: skip
    quarantine.append(quarantine_rows(rejected, 2, AT), BatchRecord(quarantine.app_id, 2, "1", 2))

    assert main(["tail", "--table", str(tmp_path / "predictions"), "--rows", "4"], {}) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t")[:5] == ["scored_at", "batch_id", "topic", "partition", "offset"]
    shown = [tuple(int(f) for f in (v[1], v[3], v[4])) for v in (x.split("\t") for x in lines[1:])]
    assert shown == [(1, 1, 9), (1, 1, 11), (2, 0, 12), (2, 1, 13)]  # batch, partition, offset

    assert main(["tail", "--table", str(tmp_path / "quarantine"), "--output", "json"], {}) == 0
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["error_kind"], r["key"], r["value"]) for r in found] == [
        ("malformed_json", "k", "{not json"),
        ("invalid_utf8", "\\xff", "\\xc3("),
    ]

    # report reads the same Spark-written tables (Spark's timestamps, partitions) with delta-rs.
    png = tmp_path / "report.png"
    assert main(["report", "--predictions-table", str(tmp_path / "predictions"),
                 "--quarantine-table", str(tmp_path / "quarantine"), "--from", "2026-11-26T11:00",
                 "--until", "2026-11-26T13:00", "--output", str(png)], {}) == 0  # fmt: skip
    assert capsys.readouterr().out.splitlines()[1:] == [
        "scored: 14 rows (0.00194 rows/s)",
        "latency from Kafka timestamp to scoring: p50 0 s, p95 0 s, p99 0 s",
        "quarantined: 2 (invalid_utf8 1, malformed_json 1)",
        "model versions: m v1 14 rows",
        f"wrote {png}",
    ]
    assert png.stat().st_size > 0

    # Following: the rows of each batch committed after the first read, once each.
    reader, seen, stop = TableTail(str(tmp_path / "predictions")), [], threading.Event()

    def follow() -> None:
        for rows in reader.follow(2, 0.2, keep_going=lambda: not stop.is_set()):
            seen.append(rows)

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    assert _wait(lambda: len(seen) == 1, 30)
    append_predictions(spark, predictions, 3, range(14, 17))
    append_predictions(spark, predictions, 4, range(17, 19))
    arrived = _wait(lambda: sum(t.num_rows for t in seen) >= 7, 30)
    stop.set()
    follower.join(10)
    assert arrived
    assert seen[0]["offset"].to_pylist() == [12, 13]
    # batch 3 (partition 0: 14, 16; partition 1: 15), then batch 4 (0: 18; 1: 17)
    assert pa.concat_tables(seen[1:])["offset"].to_pylist() == [14, 16, 15, 18, 17]


def _wait(done: Callable[[], bool], timeout_s: float) -> bool:
    event = threading.Event()
    for _ in range(int(timeout_s / 0.2)):
        if done():
            return True
        event.wait(0.2)
    return done()


def test_tail_after_compaction_reaches_back_into_the_compacted_file(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A compacted file holds batches 0 and 1; its largest batch id alone would cut at batch 1.
    predictions = _sink(spark, tmp_path / "predictions", PREDICTIONS_SCHEMA, PREDICTIONS_PARTITION)
    for batch_id, offsets in enumerate([range(0, 6), range(6, 12)]):
        append_predictions(spark, predictions, batch_id, offsets)
    assert main(["compact", "--table", str(tmp_path / "predictions")], {}) == 0
    append_predictions(spark, predictions, 2, range(12, 14))
    capsys.readouterr()

    assert main(["tail", "--table", str(tmp_path / "predictions"), "--rows", "10"], {}) == 0
    lines = capsys.readouterr().out.splitlines()
    shown = [tuple(int(f) for f in (v[1], v[3], v[4])) for v in (x.split("\t") for x in lines[1:])]
    assert shown == [
        (0, 1, 3), (0, 1, 5),
        (1, 0, 6), (1, 0, 8), (1, 0, 10), (1, 1, 7), (1, 1, 9), (1, 1, 11),
        (2, 0, 12), (2, 1, 13),
    ]  # fmt: skip


def test_tail_of_a_path_without_a_table_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tail", "--table", str(tmp_path / "none")], {}) == 2
    assert capsys.readouterr().err.strip() == f"error: no Delta table at {tmp_path / 'none'}"
