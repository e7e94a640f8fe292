"""The service end to end, in process: real broker, Spark Kafka source, Delta tables, MLflow."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import deltalake
import pandas as pd
import pytest
from kafka import KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewPartitions, NewTopic
from mlflow.tracking import MlflowClient
from pyspark.errors import StreamingQueryException
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from infra.tracking import TrackingStore
from streaming.cli import main
from streaming.errors import CheckpointMismatchError, ConfigurationError
from streaming.ops.metrics import ServiceMetrics
from streaming.query.rejections import GATHER_BYTES
from streaming.query.service import InferenceService
from streaming.query.verify import Verdict, verify
from streaming.settings import ServiceSettings, Trigger
from streaming.sink.delta import read_table
from streaming.source.kafka import read_kafka_topic
from tests.streaming.conftest import (
    FEATURES,
    RaisingModel,
    Registry,
    all_offsets_once,
    event,
    fit_pipeline,
    mixed_events,
    offsets,
    produce,
    register_sklearn,
    training_frame,
    well_formed,
)
from tests.streaming.hostile import CASES, MAX_VALUE_BYTES, key_of
from tests.support import (
    create_topic,
    duckdb_with_delta,
    free_port,
    report_fault,
    send,
    wait_until,
)


def run_once(
    spark: SparkSession, registry: Registry, settings: ServiceSettings
) -> InferenceService:
    service = InferenceService(spark, settings, registry.client, ServiceMetrics())
    service.start()
    service.run_until_stopped()
    return service


def test_predictions_match_the_model_and_bad_records_are_quarantined(
    spark: SparkSession,
    registry: Registry,
    base_model,  # type: ignore[no-untyped-def]
    topic: str,
    kafka_bootstrap: str,
    service_settings: Callable[..., ServiceSettings],
) -> None:
    version = registry.register_spark(base_model, training_frame(spark))
    values = mixed_events(60)
    produce(kafka_bootstrap, topic, values)
    settings = service_settings(f"models:/{registry.name}@champion")

    run_once(spark, registry, settings)

    predictions = spark.read.format("delta").load(settings.predictions_table)
    quarantine = spark.read.format("delta").load(settings.quarantine_table)
    good = well_formed(values)
    assert predictions.count() == len(good)
    assert quarantine.count() == len(values) - len(good)

    expected_input = spark.createDataFrame(
        [(e["event_id"], *[e[f] for f in FEATURES]) for e in good],
        "event_id string, room_type string, accommodates double, bedrooms double",
    )
    expected = {r.event_id: r.prediction for r in base_model.transform(expected_input).collect()}
    actual = {r.event_id: r.prediction for r in predictions.collect()}
    assert actual == pytest.approx(expected, rel=1e-12)

    lineage = (
        predictions.select("model_name", "model_version", "model_run_id", "topic")
        .distinct()
        .collect()
    )
    assert len(lineage) == 1
    assert (lineage[0].model_name, lineage[0].model_version, lineage[0].topic) == (
        registry.name,
        version,
        topic,
    )
    assert lineage[0].model_run_id
    keys = {r.event_id: r.key for r in predictions.select("event_id", "key").collect()}
    assert keys["e-0"] == "listing-0"

    kinds = {r.error_kind: r["count"] for r in quarantine.groupBy("error_kind").count().collect()}
    assert set(kinds) == {
        "malformed_json",
        "missing_field",
        "type_mismatch",
        "invalid_utf8",
        "tombstone",
    }
    good_values = {json.dumps(e).encode() for e in good}
    expected_raw = sorted((v or b"") for v in values if v not in good_values)
    assert (
        sorted((bytes(r.value) if r.value is not None else b"") for r in quarantine.collect())
        == expected_raw
    )
    assert all(r.error_detail for r in quarantine.collect())
    all_offsets_once(spark, settings.predictions_table, settings.quarantine_table, len(values))

    # Downstream readers see the same table.
    by_delta_rs = deltalake.DeltaTable(settings.predictions_table).to_pandas()
    assert len(by_delta_rs) == len(good)
    assert deltalake.DeltaTable(settings.predictions_table).metadata().partition_columns == [
        "event_date"
    ]


def test_restart_from_the_checkpoint_neither_duplicates_nor_skips_while_it_compacts(
    spark: SparkSession,
    registry: Registry,
    base_model,  # type: ignore[no-untyped-def]
    topic: str,
    kafka_bootstrap: str,
    service_settings: Callable[..., ServiceSettings],
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    settings = service_settings(
        f"models:/{registry.name}@champion", max_offsets_per_trigger=15, compact_every=2
    )
    produce(kafka_bootstrap, topic, mixed_events(40))
    first = run_once(spark, registry, settings)
    produce(kafka_bootstrap, topic, mixed_events(25, start=40), start_key=40)
    second = run_once(spark, registry, settings)
    run_once(spark, registry, settings)  # nothing new: nothing written

    all_offsets_once(spark, settings.predictions_table, settings.quarantine_table, 65)
    batches = (
        spark.read.format("delta")
        .load(settings.predictions_table)
        .select("batch_id")
        .distinct()
        .count()
    )
    assert batches >= 5  # 65 records at most 15 per batch
    # Compacted in the background while the query wrote (every 2 batches with rows): the
    # restarts still found their batches, and other readers see the same rows.
    assert first.compaction is not None and first.compaction.runs >= 1
    assert second.compaction is not None and second.compaction.runs >= 1
    table = deltalake.DeltaTable(settings.predictions_table)
    history = table.history()
    written = sum(
        int(c.get("operationMetrics", {}).get("numFiles", 0))
        for c in history
        if c["operation"] == "WRITE"
    )
    assert "OPTIMIZE" in {c["operation"] for c in history}
    assert 0 < len(table.file_uris()) < written
    spark_rows = sorted(
        (r.partition, r.offset)
        for r in spark.read.format("delta").load(settings.predictions_table).collect()
    )
    arrow = table.to_pyarrow_table(columns=["partition", "offset"]).to_pylist()
    assert sorted((r["partition"], r["offset"]) for r in arrow) == spark_rows
    duck = duckdb_with_delta().execute(
        f"SELECT partition, \"offset\" FROM delta_scan('{settings.predictions_table}')"
    )
    assert sorted(duck.fetchall()) == spark_rows


def test_producer_retries_are_dropped_by_event_id_also_after_a_restart(
    spark: SparkSession,
    registry: Registry,
    base_model,  # type: ignore[no-untyped-def]
    topic: str,
    kafka_bootstrap: str,
    service_settings: Callable[..., ServiceSettings],
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    settings = service_settings(f"models:/{registry.name}@champion", dedup_watermark="1 hour")
    first = [json.dumps(event(i)).encode() for i in range(20)]
    retried = [json.dumps(event(i)).encode() for i in (3, 7, 7)]  # same event ids again
    produce(kafka_bootstrap, topic, first + retried)
    run_once(spark, registry, settings)
    # After a restart the seen ids come back from the checkpoint's state store.
    produce(kafka_bootstrap, topic, [json.dumps(event(i)).encode() for i in (1, 20, 21)])
    run_once(spark, registry, settings)

    ids = [
        r.event_id for r in spark.read.format("delta").load(settings.predictions_table).collect()
    ]
    assert sorted(ids) == sorted(f"e-{i}" for i in range(22))


def _delete_before(bootstrap: str, topic: str, offset: int) -> None:
    """What retention does: the broker drops partition 0's records below ``offset``."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    try:
        admin.delete_records({TopicPartition(topic, 0): offset})
    finally:
        admin.close()


def test_records_deleted_before_they_were_read_stop_the_query_or_are_skipped_and_logged(
    spark: SparkSession,
    registry: Registry,
    base_model,  # type: ignore[no-untyped-def]
    kafka_bootstrap: str,
    service_settings: Callable[..., ServiceSettings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    topic = create_topic(kafka_bootstrap, f"retention-{uuid.uuid4().hex[:8]}", partitions=1)
    uri = f"models:/{registry.name}@champion"
    fail = service_settings(uri, topic=(topic,))
    produce(kafka_bootstrap, topic, [json.dumps(event(i)).encode() for i in range(10)])
    run_once(spark, registry, fail)
    produce(kafka_bootstrap, topic, [json.dumps(event(i)).encode() for i in range(10, 30)], 10)
    _delete_before(kafka_bootstrap, topic, 25)  # 10..24 never read

    with pytest.raises(StreamingQueryException, match="Some data may have been lost"):
        run_once(spark, registry, fail)  # the default: stop loudly
    assert sorted(o for _, o in offsets(spark, fail.predictions_table)) == list(range(10))

    with caplog.at_level(logging.WARNING, logger="streaming.batch"):
        service = run_once(
            spark, registry, service_settings(uri, topic=(topic,), on_data_loss="skip")
        )

    landed = sorted(o for _, o in offsets(spark, fail.predictions_table))
    assert landed == [*range(10), *range(25, 30)]
    verdict = _verified(spark, fail, topic, "records deleted before they were read", restarts=2)
    assert (verdict.records, verdict.not_in_topic) == (5, 10)  # the topic keeps 25..29 now
    assert service.metrics.offsets_skipped.labels(topic=topic, partition="0")._value.get() == 15
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "streaming.batch" and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1
    assert re.match(
        rf"batch \d+ skipped {topic}/0 offsets 10 to 24: deleted by retention", warnings[0]
    )


def _verified(
    spark: SparkSession, settings: ServiceSettings, topic: str, scenario: str, restarts: int = 0
) -> Verdict:
    """A fault scenario ends with the verifier, on the real topic and tables."""
    verdict = verify(
        read_kafka_topic(spark, settings.bootstrap_servers, topic),
        read_table(spark, settings.predictions_table),
        read_table(spark, settings.quarantine_table),
        topics=(topic,),
    )
    report_fault(scenario, json.loads(verdict.to_json()), restarts=restarts)
    assert verdict.ok, verdict.render()
    return verdict


def _send_to(bootstrap: str, topic: str, partition: int, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=4 << 20)
    try:
        for value in values:
            producer.send(topic, value=value, partition=partition)
        producer.flush()
    finally:
        producer.close()


def test_partitions_added_while_the_query_runs_are_read_from_their_first_offset(
    spark: SparkSession,
    registry: Registry,
    base_model,  # type: ignore[no-untyped-def]
    topic: str,
    kafka_bootstrap: str,
    service_settings: Callable[..., ServiceSettings],
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    settings = service_settings(
        f"models:/{registry.name}@champion", trigger=Trigger(interval="500 milliseconds")
    )
    with _running_service(spark, settings, registry.client):
        produce(kafka_bootstrap, topic, mixed_events(10, bad_every=0))
        _wait_for_rows(spark, settings.predictions_table, 10)
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=30000)
        try:
            admin.create_partitions({topic: NewPartitions(total_count=4)})
        finally:
            admin.close()
        for partition in (2, 3):
            _send_to(kafka_bootstrap, topic, partition, mixed_events(5, bad_every=0))
        _wait_for_rows(spark, settings.predictions_table, 20)

    assert _verified(spark, settings, topic, "partitions added while running").records == 20
    assert {p for p, _ in offsets(spark, settings.predictions_table)} == {0, 1, 2, 3}


def test_a_large_message_on_a_topic_that_allows_it_is_read_and_scored(
    spark: SparkSession,
    registry: Registry,
    base_model,  # type: ignore[no-untyped-def]
    kafka_bootstrap: str,
    service_settings: Callable[..., ServiceSettings],
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    topic = f"large-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=30000)
    try:
        allows = {"max.message.bytes": str(3 << 20)}
        admin.create_topics([NewTopic(topic, 1, 1, topic_configs=allows)])
    finally:
        admin.close()
    large = json.dumps({**event(0), "description": "x" * 1_500_000}).encode()
    _send_to(kafka_bootstrap, topic, 0, [large, json.dumps(event(1)).encode()])
    settings = service_settings(
        f"models:/{registry.name}@champion", topic=(topic,), max_value_bytes=2 << 20
    )

    run_once(spark, registry, settings)

    assert len(large) > 1_500_000
    assert _verified(spark, settings, topic, "a 1.5 MB message").records == 2
    scored = spark.read.format("delta").load(settings.predictions_table)
    assert sorted(r.event_id for r in scored.collect()) == ["e-0", "e-1"]


def test_a_deleted_checkpoint_with_existing_tables_refuses_to_start(
    spark: SparkSession,
    registry: Registry,
    base_model,  # type: ignore[no-untyped-def]
    topic: str,
    kafka_bootstrap: str,
    service_settings: Callable[..., ServiceSettings],
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    settings = service_settings(f"models:/{registry.name}@champion")
    produce(kafka_bootstrap, topic, mixed_events(10))
    run_once(spark, registry, settings)
    assert settings.checkpoint is not None
    shutil.rmtree(settings.checkpoint)

    service = InferenceService(spark, settings, registry.client, ServiceMetrics())
    with pytest.raises(CheckpointMismatchError, match=r"checkpoint .* is empty but table"):
        service.start()


def test_a_deleted_predictions_table_with_a_checkpoint_refuses_to_start(
    spark: SparkSession,
    registry: Registry,
    base_model,  # type: ignore[no-untyped-def]
    topic: str,
    kafka_bootstrap: str,
    service_settings: Callable[..., ServiceSettings],
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    settings = service_settings(f"models:/{registry.name}@champion")
    produce(kafka_bootstrap, topic, mixed_events(10))
    run_once(spark, registry, settings)
    shutil.rmtree(settings.predictions_table)

    service = InferenceService(spark, settings, registry.client, ServiceMetrics())
    with pytest.raises(CheckpointMismatchError, match="holds none of this query's batches"):
        service.start()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"model_uri": "models:/no-such-model@champion"},
            "cannot serve models:/no-such-model@champion",
        ),
        ({"bootstrap_servers": "127.0.0.1:1"}, "no Kafka broker reachable at 127.0.0.1:1"),
        (
            {
                "kafka_options": {
                    "kafka.security.protocol": "SSL",  # the listener speaks PLAINTEXT
                    "kafka.default.api.timeout.ms": "5000",
                    "kafka.request.timeout.ms": "5000",
                }
            },
            "did not answer with the given settings .* kafka.security.protocol",
        ),
    ],
)
def test_bad_configuration_stops_at_start_with_one_line(
    spark: SparkSession,
    registry: Registry,
    service_settings: Callable[..., ServiceSettings],
    tracking_store,  # type: ignore[no-untyped-def]
    override: dict[str, str],
    message: str,
) -> None:
    settings = service_settings(
        override.get("model_uri", "models:/no-such-model@champion"),
        **{k: v for k, v in override.items() if k != "model_uri"},
    )
    service = InferenceService(spark, settings, registry.client, ServiceMetrics())
    with pytest.raises(ConfigurationError, match=message) as raised:
        service.start()
    assert "\n" not in str(raised.value)


def test_a_model_failing_its_check_while_records_wait_stops_the_start_and_writes_nothing(
    spark: SparkSession,
    registry: Registry,
    topic: str,
    kafka_bootstrap: str,
    service_settings: Callable[..., ServiceSettings],
) -> None:
    # The query starts while the model loads: its first batch waits for the model, and fails
    # with it before writing.
    produce(kafka_bootstrap, topic, mixed_events(6))
    example = pd.DataFrame([event(i) for i in range(3)])[FEATURES]
    registry.register_pyfunc(RaisingModel(), example, alias="champion")
    settings = service_settings(f"models:/{registry.name}@champion")
    service = InferenceService(spark, settings, registry.client, ServiceMetrics())

    with pytest.raises(ConfigurationError, match="failed its smoke prediction") as raised:
        service.start()

    assert "\n" not in str(raised.value)
    assert not [q for q in spark.streams.active if q.name == settings.query_name]
    for table in (settings.predictions_table, settings.quarantine_table):
        assert spark.read.format("delta").load(table).count() == 0


def test_an_unwritable_table_path_stops_at_start(
    spark: SparkSession,
    registry: Registry,
    base_model,  # type: ignore[no-untyped-def]
    service_settings: Callable[..., ServiceSettings],
    tmp_path: Path,
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        settings = service_settings(
            f"models:/{registry.name}@champion", predictions_table=str(locked / "predictions")
        )
        service = InferenceService(spark, settings, registry.client, ServiceMetrics())
        import os

        if os.geteuid() == 0:
            # root ignores permission bits; a file in the way is the failure root still meets.
            settings = service_settings(
                f"models:/{registry.name}@champion", predictions_table=str(tmp_path / "file" / "t")
            )
            (tmp_path / "file").write_text("not a folder")
            service = InferenceService(spark, settings, registry.client, ServiceMetrics())
        with pytest.raises(ConfigurationError, match="table"):
            service.start()
    finally:
        locked.chmod(0o700)


def test_tables_use_the_default_protocol_for_other_readers(
    spark: SparkSession,
    registry: Registry,
    base_model,  # type: ignore[no-untyped-def]
    topic: str,
    kafka_bootstrap: str,
    service_settings: Callable[..., ServiceSettings],
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    settings = service_settings(f"models:/{registry.name}@champion")
    produce(kafka_bootstrap, topic, mixed_events(20))
    run_once(spark, registry, settings)
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{settings.predictions_table}`").collect()[0]
    assert detail.minReaderVersion == 1
    assert "deletionVectors" not in (detail.tableFeatures or [])
    assert detail.properties["delta.checkpointInterval"] == "100"

    con = duckdb_with_delta()
    day = (
        spark.read.format("delta")
        .load(settings.predictions_table)
        .select(F.min("event_date"))
        .first()[0]
    )
    by_duckdb = con.sql(
        f"SELECT count(*) FROM delta_scan('{settings.predictions_table}') "
        f"WHERE event_date = DATE '{day}'"
    ).fetchone()
    by_spark = (
        spark.read.format("delta")
        .load(settings.predictions_table)
        .where(F.col("event_date") == day)
        .count()
    )
    assert by_duckdb is not None and by_duckdb[0] == by_spark > 0


@contextmanager
def _running_service(
    spark: SparkSession, settings: ServiceSettings, client: MlflowClient
) -> Iterator[InferenceService]:
    """The service started on the test's session; stopped after the block as SIGTERM would."""
    service = InferenceService(spark, settings, client, ServiceMetrics())
    service.start()
    try:
        yield service
    finally:
        service.request_stop()
        service.run_until_stopped()


def _wait_for_rows(spark: SparkSession, table: str, count: int, timeout_s: float = 180) -> None:
    def enough() -> bool:
        present = Path(table, "_delta_log").is_dir()
        return present and spark.read.format("delta").load(table).count() >= count

    wait_until(enough, f"{count} rows in {table}", timeout_s)


def test_a_scikit_learn_model_serves_through_the_run_command(
    spark: SparkSession,
    registry: Registry,
    tracking_store: TrackingStore,
    topic: str,
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    version, model = register_sklearn(registry, "champion")
    values = mixed_events(21)
    produce(kafka_bootstrap, topic, values)
    predictions, quarantine = tmp_path / "predictions", tmp_path / "quarantine"
    argv = [
        "run",
        "--bootstrap-servers", kafka_bootstrap,
        "--topic", topic,
        "--model-uri", f"models:/{registry.name}@champion",
        "--predictions-table", str(predictions),
        "--quarantine-table", str(quarantine),
        "--checkpoint", str(tmp_path / "checkpoint"),
        "--trigger", "available-now",
    ]  # fmt: skip

    assert main(argv, {"MLFLOW_TRACKING_URI": tracking_store.tracking_uri}) == 0

    good = well_formed(values)
    frame = pd.DataFrame(good)[FEATURES].astype({"bedrooms": float})
    expected = dict(zip([g["event_id"] for g in good], model.predict(frame), strict=True))  # type: ignore[attr-defined]
    rows = spark.read.format("delta").load(str(predictions)).collect()
    assert {r.event_id: r.prediction for r in rows} == pytest.approx(expected)
    assert {r.model_version for r in rows} == {version}
    all_offsets_once(spark, str(predictions), str(quarantine), len(values))


@contextmanager
def _immutable(folder: Path) -> Iterator[None]:
    """A folder no one can add to, root included (ext4's immutable attribute): storage that
    refuses writes the way a full or read-only volume does."""
    subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_failing_table_storage_stops_the_query_with_exit_1_and_a_restart_loses_nothing(
    spark: SparkSession,
    registry: Registry,
    base_model,  # type: ignore[no-untyped-def]
    tracking_store: TrackingStore,
    topic: str,
    kafka_bootstrap: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    predictions = tmp_path / "predictions"
    argv = [
        "run",
        "--bootstrap-servers", kafka_bootstrap,
        "--topic", topic,
        "--model-uri", f"models:/{registry.name}@champion",
        "--predictions-table", str(predictions),
        "--quarantine-table", str(tmp_path / "quarantine"),
        "--checkpoint", str(tmp_path / "checkpoint"),
        "--trigger", "available-now",
    ]  # fmt: skip
    env = {"MLFLOW_TRACKING_URI": tracking_store.tracking_uri}
    produce(kafka_bootstrap, topic, mixed_events(14))
    assert main(argv, env) == 0
    produce(kafka_bootstrap, topic, mixed_events(14, start=14), start_key=14)
    capsys.readouterr()

    with _immutable(predictions / "_delta_log"):  # the commit of the next batch cannot land
        assert main(argv, env) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]

    assert len(errors) == 1 and "restart to resume from" in errors[0], errors
    assert main(argv, env) == 0  # storage back: the failed batch is replayed
    settings = ServiceSettings(
        bootstrap_servers=kafka_bootstrap,
        model_uri="unused",
        predictions_table=str(predictions),
        quarantine_table=str(tmp_path / "quarantine"),
        topic=(topic,),
    )
    verdict = _verified(spark, settings, topic, "table storage refusing writes", restarts=2)
    assert verdict.records == 28


def test_metrics_are_served_over_http(
    spark: SparkSession,
    registry: Registry,
    base_model,  # type: ignore[no-untyped-def]
    topic: str,
    kafka_bootstrap: str,
    service_settings: Callable[..., ServiceSettings],
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    port = free_port()
    settings = service_settings(f"models:/{registry.name}@champion", metrics_port=port)
    produce(kafka_bootstrap, topic, mixed_events(14))
    run_once(spark, registry, settings)

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert values["inference_records_in_total"] == 14
    assert values["inference_predictions_total"] == 12
    assert sum(v for k, v in values.items() if k.startswith("inference_quarantined_total")) == 2
    assert values["inference_model_version"] == 1
    # From the query's progress reports: the batch's rates, duration and lag per partition
    # (the topic is drained, so every partition is 0 behind).
    assert values["inference_trigger_seconds_count"] == values["inference_batches_total"] >= 1
    assert values["inference_last_trigger_seconds"] > 0
    assert values["inference_processed_rows_per_second"] > 0
    assert "inference_input_rows_per_second" in values
    lag = {
        k: v for k, v in values.items() if k.startswith("inference_partition_offsets_behind_latest")
    }
    assert lag == {
        f'inference_partition_offsets_behind_latest{{partition="{p}",topic="{topic}"}}': 0
        for p in (0, 1)
    }


def test_a_topic_pattern_reads_every_matching_topic(
    spark: SparkSession,
    registry: Registry,
    base_model,  # type: ignore[no-untyped-def]
    topic: str,
    kafka_bootstrap: str,
    service_settings: Callable[..., ServiceSettings],
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    second = f"{topic}-eu"
    create_topic(kafka_bootstrap, second, partitions=1)
    produce(kafka_bootstrap, topic, mixed_events(9, bad_every=0))
    produce(kafka_bootstrap, second, mixed_events(6, start=9, bad_every=0), start_key=9)
    settings = service_settings(
        f"models:/{registry.name}@champion", topic=(), topic_pattern=f"{re.escape(topic)}.*"
    )

    run_once(spark, registry, settings)

    rows = spark.read.format("delta").load(settings.predictions_table).collect()
    coordinates = {(r.topic, r.partition, r.offset) for r in rows}
    assert len(coordinates) == len(rows) == 15
    assert {r.topic for r in rows} == {topic, second}


# The batch cap sets how large a rejected record the driver gathers: at the default, every
# hostile case is gathered; at this cap, only those of at most 64 key and value bytes, and the
# others are read again from the Kafka batch for the quarantine.
_READ_AGAIN_CAP = GATHER_BYTES // 64


@pytest.mark.parametrize("cap", [None, _READ_AGAIN_CAP], ids=["gathered", "read-again"])
def test_every_hostile_case_lands_once_with_its_verdict_and_every_reader_opens_the_tables(
    spark: SparkSession,
    registry: Registry,
    base_model,  # type: ignore[no-untyped-def]
    topic: str,
    kafka_bootstrap: str,
    service_settings: Callable[..., ServiceSettings],
    cap: int | None,
) -> None:
    registry.register_spark_with_profile(base_model, training_frame(spark))
    send(kafka_bootstrap, topic, [(key_of(i, case), case.value) for i, case in enumerate(CASES)])
    options = {} if cap is None else {"max_offsets_per_trigger": cap}
    if cap is not None:  # some rejected records are larger than the driver gathers at this cap
        assert any(
            len(key_of(i, c)) + len(c.value or b"") > 64 for i, c in enumerate(CASES) if c.kind
        )
    settings = service_settings(
        f"models:/{registry.name}@champion", max_value_bytes=MAX_VALUE_BYTES, **options
    )

    run_once(spark, registry, settings)

    all_offsets_once(spark, settings.predictions_table, settings.quarantine_table, len(CASES))
    index = {key_of(i, case): i for i, case in enumerate(CASES)}
    scored = spark.read.format("delta").load(settings.predictions_table).collect()
    quarantined = spark.read.format("delta").load(settings.quarantine_table).collect()
    verdicts: dict[int, tuple[str | None, str | None, str]] = {}
    for r in scored:
        key = bytes(r.key_bytes) if r.key_bytes is not None else r.key.encode()
        flag = r.profile_flags.split(":")[0] if r.profile_flags else None
        verdicts[index[key]] = (None, flag, r.profile_flags or "")
    for r in quarantined:
        verdicts[index[bytes(r.key)]] = (r.error_kind, None, r.error_detail)
    for i, case in enumerate(CASES):
        kind, flag, said = verdicts[i]
        assert (kind, flag) == (case.kind, case.flag), case.name
        assert case.detail in said, (case.name, said)
    # The raw bytes are kept where they belong: the quarantine value, the key_bytes column.
    raw = {index[bytes(r.key)]: r.value for r in quarantined}
    assert all(
        (bytes(raw[i]) if raw[i] is not None else None) == case.value
        for i, case in enumerate(CASES)
        if case.kind
    )

    for table in (settings.predictions_table, settings.quarantine_table):
        rows = len(scored) if table == settings.predictions_table else len(quarantined)
        assert len(deltalake.DeltaTable(table).to_pandas()) == rows
        assert (
            len(duckdb_with_delta().sql(f"SELECT * FROM delta_scan('{table}')").fetchall()) == rows
        )
        assert len(spark.read.format("delta").load(table).toPandas()) == rows


@contextmanager
def _mlflow_server(store: TrackingStore, port: int) -> Iterator[str]:
    """``mlflow server`` on the session's store: the registry as a service would reach it."""
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store.tracking_uri,
         "--default-artifact-root", str(store.local_dir / "server-artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip

    def healthy() -> bool:
        assert server.poll() is None, "mlflow server exited"
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    try:
        wait_until(healthy, "mlflow server", 60, 0.3)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def test_the_running_query_follows_the_alias_through_an_unreachable_registry_and_a_broken_version(
    spark: SparkSession,
    registry: Registry,
    base_model,  # type: ignore[no-untyped-def]
    tracking_store: TrackingStore,
    topic: str,
    kafka_bootstrap: str,
    service_settings: Callable[..., ServiceSettings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    # The service reaches the registry through a tracking server, which goes away for a while.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    port = free_port()
    server_client = MlflowClient(
        tracking_uri=f"http://127.0.0.1:{port}", registry_uri=f"http://127.0.0.1:{port}"
    )
    settings = service_settings(
        f"models:/{registry.name}@champion",
        trigger=Trigger(interval="500 milliseconds"),
        model_poll_seconds=1.0,
    )
    with _mlflow_server(tracking_store, port):
        service = InferenceService(spark, settings, server_client, ServiceMetrics())
        service.start()
    try:
        produce(kafka_bootstrap, topic, mixed_events(10, bad_every=0))
        _wait_for_rows(spark, settings.predictions_table, 10)
        # The alias moves while the registry cannot be reached: v1 keeps serving, counted.
        v2 = registry.register_spark(
            fit_pipeline(training_frame(spark, slope=90.0)), training_frame(spark)
        )
        unreachable = service.metrics.model_swap_failures.labels(reason="registry_unreachable")
        wait_until(lambda: unreachable._value.get() >= 2, "failed registry look-ups", 60)
        produce(kafka_bootstrap, topic, mixed_events(10, start=10, bad_every=0), start_key=10)
        _wait_for_rows(spark, settings.predictions_table, 20)
        with _mlflow_server(tracking_store, port):
            # Back: v2 is loaded and checked off the batch path; the next batch switches to it.
            wait_until(lambda: service.models.ready_version == v2, "v2 ready", 120)
            produce(kafka_bootstrap, topic, mixed_events(10, start=20, bad_every=0), start_key=20)
            _wait_for_rows(spark, settings.predictions_table, 30)
            # A version that needs a field events lack is rejected; v2 keeps serving.
            base = training_frame(spark)
            wider = base.withColumn("beds", base.accommodates / 2)
            broken = fit_pipeline(wider, features=[*FEATURES, "beds"])
            registry.register_spark(broken, wider, features=[*FEATURES, "beds"])
            rejected = service.metrics.model_swap_failures.labels(reason="version_rejected")
            wait_until(lambda: rejected._value.get() == 1, "v3 rejected", 120)
            produce(kafka_bootstrap, topic, mixed_events(10, start=30, bad_every=0), start_key=30)
            _wait_for_rows(spark, settings.predictions_table, 40)
    finally:
        service.request_stop()
        service.run_until_stopped()

    rows = spark.read.format("delta").load(settings.predictions_table).collect()
    version_of = {r.event_id: r.model_version for r in rows}
    assert {version_of[f"e-{i}"] for i in range(20)} == {"1"}
    assert {version_of[f"e-{i}"] for i in range(20, 40)} == {v2}
    per_batch: dict[int, set[str]] = {}
    for r in rows:
        per_batch.setdefault(r.batch_id, set()).add(r.model_version)
    assert all(len(versions) == 1 for versions in per_batch.values())  # never mixed in a batch
    assert service.metrics.model_swaps._value.get() == 1
    # The query was started again once, its own plan judging with v2's judge.
    assert service.metrics.query_restarts._value.get() == 1
    assert service.processor is not None
    assert service.processor.stream_judge is service.judges.for_model(service.models.current)
    assert service.metrics.model_swap_failures.labels(reason="version_rejected")._value.get() == 1
    verdict = _verified(spark, settings, topic, "registry unreachable while the alias moves")
    assert verdict.records == 40
