"""``python -m streaming tail``: the newest rows of the service's tables, read with delta-rs."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession

from streaming.cli import main
from streaming.settings import ServiceSettings
from streaming.sink.tail import TableTail
from tests.streaming.conftest import Registry, mixed_events, produce, training_frame
from tests.streaming.query.test_service import run_once


def test_tail_shows_the_newest_rows_and_follows_new_batches(
    spark: SparkSession,
    registry: Registry,
    base_model: PipelineModel,
    topic: str,
    kafka_bootstrap: str,
    service_settings: Callable[..., ServiceSettings],
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    settings = service_settings(f"models:/{registry.name}@champion", max_offsets_per_trigger=6)
    produce(kafka_bootstrap, topic, mixed_events(14))  # offsets 6 and 13 are malformed
    run_once(spark, registry, settings)
    capsys.readouterr()

    assert main(["tail", "--table", settings.predictions_table, "--rows", "4"], {}) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split("\t")
    assert header[:5] == ["scored_at", "batch_id", "topic", "partition", "offset"]
    newest = spark.read.format("delta").load(settings.predictions_table)
    expected = [
        (r.batch_id, r.partition, r.offset)
        for r in newest.orderBy("batch_id", "partition", "offset").collect()[-4:]
    ]
    shown = [tuple(int(f) for f in (v[1], v[3], v[4])) for v in (x.split("\t") for x in lines[1:])]
    assert shown == expected

    assert main(["tail", "--table", settings.quarantine_table, "--output", "json"], {}) == 0
    rejected = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["error_kind"] for r in rejected) == ["malformed_json", "missing_field"]
    assert all(r["error_detail"] and "value" in r for r in rejected)

    # Following: the rows of the batches committed after the first read, once each.
    reader, seen, stop = TableTail(settings.predictions_table), [], threading.Event()

    def follow() -> None:
        for rows in reader.follow(2, 0.2, keep_going=lambda: not stop.is_set()):
            seen.append(rows)

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    produce(kafka_bootstrap, topic, mixed_events(5, start=14, bad_every=0), start_key=14)
    run_once(spark, registry, settings)
    deadline_reached = not _wait(lambda: sum(t.num_rows for t in seen) >= 7, 30)
    stop.set()
    follower.join(10)
    assert not deadline_reached
    later = pa.concat_tables(seen[1:])
    assert seen[0].num_rows == 2 and later.num_rows == 5
    assert sorted(later["event_id"].to_pylist()) == sorted(f"e-{i}" for i in range(14, 19))


def _wait(done: Callable[[], bool], timeout_s: float) -> bool:
    event = threading.Event()
    for _ in range(int(timeout_s / 0.2)):
        if done():
            return True
        event.wait(0.2)
    return done()


def test_tail_of_a_path_without_a_table_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tail", "--table", str(tmp_path / "none")], {}) == 2
    assert capsys.readouterr().err.strip() == f"error: no Delta table at {tmp_path / 'none'}"
