"""The foreachBatch seam called directly: processor(records, batch_id), no stream at all."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import deltalake
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame, SparkSession

from streaming.ops.metrics import ServiceMetrics
from streaming.query.processor import MicroBatchProcessor
from streaming.query.rejections import GATHER_BYTES
from streaming.score.provider import ModelProvider
from streaming.sink.delta import BatchRecord, DeltaSink
from streaming.sink.tables import (
    PREDICTIONS_PARTITION,
    PREDICTIONS_SCHEMA,
    QUARANTINE_PARTITION,
    QUARANTINE_SCHEMA,
)
from tests.streaming.conftest import (
    FEATURES,
    Registry,
    event,
    fit_pipeline,
    mixed_events,
    register_sklearn,
    training_frame,
    well_formed,
)
from tests.support import duckdb_with_delta

AT = datetime(2026, 11, 23, 12, 0)
RECORDS = (
    "key binary, value binary, topic string, partition int, offset bigint, timestamp timestamp"
)


def records(spark: SparkSession, values: list[bytes | None], first_offset: int = 0) -> DataFrame:
    rows = [
        (f"k{i}".encode(), v, "listings", 0, first_offset + i, AT) for i, v in enumerate(values)
    ]
    return spark.createDataFrame(rows, RECORDS)


def processor_for(
    spark: SparkSession, registry: Registry, tmp_path: Path, uri: str, **options: Any
) -> MicroBatchProcessor:
    models = ModelProvider(spark, uri, registry.client, poll_seconds=0.0, metrics=ServiceMetrics())
    models.start()
    predictions = DeltaSink(
        spark, str(tmp_path / "p"), PREDICTIONS_SCHEMA, PREDICTIONS_PARTITION, "q:predictions"
    )
    quarantine = DeltaSink(
        spark, str(tmp_path / "q"), QUARANTINE_SCHEMA, QUARANTINE_PARTITION, "q:quarantine"
    )
    predictions.ensure_table()
    quarantine.ensure_table()
    return MicroBatchProcessor(models, predictions, quarantine, clock=lambda: AT, **options)


def quarantined_by_kind(process: MicroBatchProcessor) -> dict[str, float]:
    """The service metric of quarantined records, by error kind (the kinds counted at all)."""
    return {
        sample.labels["error_kind"]: sample.value
        for metric in process.metrics.quarantined.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.value
    }


def versions_by_batch(spark: SparkSession, tmp_path: Path) -> dict[int, set[str]]:
    rows = (
        spark.read.format("delta")
        .load(str(tmp_path / "p"))
        .select("batch_id", "model_version")
        .collect()
    )
    found: dict[int, set[str]] = {}
    for r in rows:
        found.setdefault(r.batch_id, set()).add(r.model_version)
    return found


def test_a_replayed_batch_is_written_once(
    spark: SparkSession,
    registry: Registry,
    base_model,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    process = processor_for(spark, registry, tmp_path, f"models:/{registry.name}@champion")
    batch = records(spark, mixed_events(14))

    first = process(batch, 0)
    again = process(batch, 0)  # Spark re-runs a batch after a crash before its checkpoint commit

    assert (first.predictions, first.quarantined) == (12, 2)
    # The metric counts each run of the batch: the reasons of a replay's quarantine rows are
    # worked out again even when the quarantine holds them already.
    assert quarantined_by_kind(process) == {"malformed_json": 2, "missing_field": 2}
    assert (again.rows_in, again.predictions, again.quarantined) == (14, 12, 2)
    assert spark.read.format("delta").load(str(tmp_path / "p")).count() == 12
    assert spark.read.format("delta").load(str(tmp_path / "q")).count() == 2
    assert process.predictions.last_batch() == BatchRecord("q:predictions", 0, "1")


def test_large_rejected_records_are_read_again_instead_of_gathered_on_the_driver(
    spark: SparkSession,
    registry: Registry,
    base_model,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    # A batch cap at which the driver gathers rejected records of at most 40 key and value bytes.
    cap = GATHER_BYTES // 40
    process = processor_for(
        spark, registry, tmp_path, f"models:/{registry.name}@champion", max_records=cap
    )
    values = [*mixed_events(35), b"\xff" * 5000]  # every kind of mixed_events, and a blob
    bad = {i: v for i, v in enumerate(values) if i % 7 == 6 or i == 35}
    batch = records(spark, values)

    found = process.rejected.of(process.judges.for_model(process.models.for_batch(0)).judge(batch))
    assert (found.count, found.left_out) == (6, 3)  # the two JSON objects and the blob are large

    outcome = process(batch, 0)
    assert (outcome.rows_in, outcome.predictions, outcome.quarantined) == (36, 30, 6)
    quarantined = spark.read.format("delta").load(str(tmp_path / "q")).collect()
    assert {r.offset: r.value for r in quarantined} == bad  # every byte, each record once
    assert {r.offset: r.error_kind for r in quarantined} == {
        6: "malformed_json",
        13: "missing_field",
        20: "type_mismatch",
        27: "invalid_utf8",
        34: "tombstone",
        35: "invalid_utf8",
    }
    assert process.quarantine.last_batch() == BatchRecord("q:quarantine", 0, "1", 6)
    assert quarantined_by_kind(process) == {
        "malformed_json": 1,
        "missing_field": 1,
        "type_mismatch": 1,
        "invalid_utf8": 2,
        "tombstone": 1,
    }

    # A restart after the predictions' commit but before the quarantine's writes the quarantine
    # from the batch again, large records included.
    fresh = DeltaSink(
        spark, str(tmp_path / "q2"), QUARANTINE_SCHEMA, QUARANTINE_PARTITION, "q:quarantine"
    )
    fresh.ensure_table()
    restarted = MicroBatchProcessor(
        process.models, process.predictions, fresh, committed_through=0, max_records=cap
    )
    again = restarted(batch, 0)
    assert (again.rows_in, again.predictions, again.quarantined) == (36, 30, 6)
    rewritten = spark.read.format("delta").load(str(tmp_path / "q2")).collect()
    assert {r.offset: r.value for r in rewritten} == bad
    assert spark.read.format("delta").load(str(tmp_path / "p")).count() == 30


def test_records_judged_in_the_streams_plan_are_used_as_they_come_until_a_swap(
    spark: SparkSession,
    registry: Registry,
    base_model,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    process = processor_for(spark, registry, tmp_path, f"models:/{registry.name}@champion")
    judge = process.judges.for_model(process.models.for_batch(0))
    process.stream_judge = judge  # as the service starts its query

    # The stream's plan judged the batch: the processor scores and quarantines from its verdicts.
    first = process(judge.judge(records(spark, mixed_events(14))).frame, 0)
    assert (first.rows_in, first.predictions, first.quarantined) == (14, 12, 2)
    assert not process.restart_wanted.is_set()

    # A version with another judge: the batch (judged by v1's judge in the plan) is judged again
    # in the batch with v2's, and the query is asked to start again with v2's judge.
    registry.register_spark(
        fit_pipeline(training_frame(spark, slope=90.0)), training_frame(spark), alias="champion"
    )
    batch = judge.judge(records(spark, mixed_events(14), first_offset=14)).frame
    second = process(batch, 1)
    assert (second.model_version, second.predictions, second.quarantined) == ("2", 12, 2)
    assert process.judges.for_model(process.models.for_batch(2)) is not judge
    assert process.restart_wanted.is_set()
    assert versions_by_batch(spark, tmp_path) == {0: {"1"}, 1: {"2"}}
    offsets = [
        r.offset
        for table in ("p", "q")
        for r in spark.read.format("delta").load(str(tmp_path / table)).select("offset").collect()
    ]
    assert sorted(offsets) == list(range(28))  # every record in one table, once


def test_an_empty_batch_still_records_its_id(
    spark: SparkSession,
    registry: Registry,
    base_model,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    process = processor_for(spark, registry, tmp_path, f"models:/{registry.name}@champion")
    process(records(spark, []), 0)
    assert process.predictions.last_batch() == BatchRecord("q:predictions", 0, "1")


def test_the_alias_is_followed_between_batches_and_never_within_one(
    spark: SparkSession,
    registry: Registry,
    base_model,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    process = processor_for(spark, registry, tmp_path, f"models:/{registry.name}@champion")
    process(records(spark, mixed_events(10, bad_every=0)), 0)
    loaded: list[str | None] = []
    process.models.prepare = lambda model: loaded.append(model.identity.version)  # type: ignore[attr-defined]

    steeper = fit_pipeline(training_frame(spark, slope=90.0))
    v2 = registry.register_spark(steeper, training_frame(spark), alias="champion")
    outcome = process(records(spark, mixed_events(10, bad_every=0), first_offset=10), 1)

    assert outcome.model_version == v2 == "2"
    assert versions_by_batch(spark, tmp_path) == {0: {"1"}, 1: {"2"}}
    scored = spark.read.format("delta").load(str(tmp_path / "p")).where("batch_id = 1")
    expected = steeper.transform(
        spark.createDataFrame(
            [tuple(event(i)[f] for f in FEATURES) for i in range(10)],
            "room_type string, accommodates double, bedrooms double",
        )
    ).collect()
    assert sorted(r.prediction for r in scored.collect()) == pytest.approx(
        sorted(r.prediction for r in expected)
    )
    assert process.metrics.model_swaps._value.get() == 1
    assert loaded == ["2"]  # the loader prepared the new version (its record judge) itself


def test_a_version_needing_fields_events_lack_is_rejected_and_the_old_one_serves(
    spark: SparkSession,
    registry: Registry,
    base_model,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    process = processor_for(spark, registry, tmp_path, f"models:/{registry.name}@champion")
    base = training_frame(spark)
    wider = base.withColumn("beds", base.accommodates / 2)
    incompatible = fit_pipeline(wider, features=[*FEATURES, "beds"])
    registry.register_spark(incompatible, wider, alias="champion", features=[*FEATURES, "beds"])

    outcome = process(records(spark, mixed_events(10, bad_every=0)), 0)

    assert outcome.model_version == "1"
    assert outcome.predictions == 10
    failures = process.metrics.model_swap_failures.labels(reason="version_rejected")._value.get()
    assert failures == 1
    process(records(spark, mixed_events(5, bad_every=0), first_offset=10), 1)  # not retried
    assert process.metrics.model_swap_failures.labels(reason="version_rejected")._value.get() == 1


def test_an_unreachable_registry_leaves_the_current_model_serving(
    spark: SparkSession,
    registry: Registry,
    base_model,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    process = processor_for(spark, registry, tmp_path, f"models:/{registry.name}@champion")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    process.models.client = MlflowClient(
        tracking_uri="http://127.0.0.1:9", registry_uri="http://127.0.0.1:9"
    )

    outcome = process(records(spark, mixed_events(6, bad_every=0)), 0)

    assert (outcome.model_version, outcome.predictions) == ("1", 6)
    failures = process.metrics.model_swap_failures.labels(
        reason="registry_unreachable"
    )._value.get()
    assert failures == 1


def test_a_scikit_learn_model_is_served_through_spark_udf(
    spark: SparkSession, registry: Registry, tmp_path: Path
) -> None:
    version, model = register_sklearn(registry, "champion")
    process = processor_for(spark, registry, tmp_path, f"models:/{registry.name}@champion")
    assert process.models.current.flavor == "pyfunc"

    values = mixed_events(12)
    outcome = process(records(spark, values), 0)

    good = well_formed(values)
    frame = pd.DataFrame(good)[FEATURES].astype({"bedrooms": float})
    expected = dict(zip([g["event_id"] for g in good], model.predict(frame), strict=True))  # type: ignore[attr-defined]
    actual = {
        r.event_id: r.prediction
        for r in spark.read.format("delta").load(str(tmp_path / "p")).collect()
    }
    assert outcome.model_version == version
    assert actual == pytest.approx(expected)


def test_hostile_bytes_leave_both_tables_readable_by_every_reader(
    spark: SparkSession,
    registry: Registry,
    base_model,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    process = processor_for(spark, registry, tmp_path, f"models:/{registry.name}@champion")
    good = json.dumps(event(1)).encode()
    values: list[tuple[bytes | None, bytes | None]] = [
        (b"\xff\xfe-key", good),  # a valid event whose key is not UTF-8: scored
        (b"k", b"\xc3\x28 not utf-8"),  # a value that is not UTF-8: quarantined
        (b"k", json.dumps(event(2, room_type="\ud800 lone surrogate")).encode()),
        (b"k", json.dumps(event(3, event_id="id-\u0000-nul\u001f")).encode()),
        (b"\xc0", b'{"room_type": "\xc0\xaf"}'),  # neither key nor value UTF-8
        (None, good),  # no key at all
    ]
    rows = [(k, v, "listings", 0, i, AT) for i, (k, v) in enumerate(values)]
    outcome = process(spark.createDataFrame(rows, RECORDS), 0)
    assert (outcome.predictions, outcome.quarantined) == (4, 2)

    predictions, quarantine = str(tmp_path / "p"), str(tmp_path / "q")
    for table, count in ((predictions, 4), (quarantine, 2)):
        assert len(deltalake.DeltaTable(table).to_pandas()) == count
        assert (
            len(duckdb_with_delta().sql(f"SELECT * FROM delta_scan('{table}')").fetchall()) == count
        )
        assert len(spark.read.format("delta").load(table).toPandas()) == count
    scored = deltalake.DeltaTable(predictions).to_pandas().set_index("offset")
    assert (
        scored.loc[0, "key"] == "\ufffd\ufffd-key" and scored.loc[0, "key_bytes"] == b"\xff\xfe-key"
    )
    assert scored.loc[5, "key"] is None and scored.loc[5, "key_bytes"] is None
