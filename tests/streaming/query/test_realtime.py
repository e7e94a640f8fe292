"""``python -m streaming realtime`` on the real broker, in Spark's Real-Time Mode.

The command runs in this process on the shared local[2] session (Real-Time Mode holds one slot
per source partition, so the events topic has one partition), stopped by a real SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from infra.tracking import TrackingStore
from streaming.cli import main
from streaming.parse.events import EventJudge, rejected_rows, valid_rows
from streaming.score.provider import ModelProvider
from streaming.sink.tables import DEAD_LETTER_HEADERS, REALTIME_PREDICTION_SCHEMA
from streaming.source.kafka import read_kafka_topic
from tests.streaming.conftest import (
    FEATURES,
    RaisingModel,
    Registry,
    event,
    fit_pipeline,
    mixed_events,
    produce,
    training_frame,
)
from tests.support import create_topic, free_port, wait_until

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _topic(bootstrap: str, role: str, partitions: int = 1) -> str:
    return create_topic(bootstrap, f"rt-{role}-{uuid.uuid4().hex[:8]}", partitions)


def _output(spark: SparkSession, bootstrap: str, topic: str) -> DataFrame:
    return (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("endingOffsets", "latest")
        .option("includeHeaders", "true")
        .load()
    )


def _predictions(spark: SparkSession, bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """The predictions topic's records: the value parsed with the contract's schema, the key."""
    frame = _output(spark, bootstrap, topic).select(
        F.col("key").alias("record_key"),
        F.from_json(F.col("value").cast("string"), REALTIME_PREDICTION_SCHEMA).alias("p"),
        F.col("value").cast("string").alias("json"),
    )
    return [
        {**row.p.asDict(), "record_key": row.record_key, "json": row.json}
        for row in frame.collect()
    ]


def _dead_letters(spark: SparkSession, bootstrap: str, topic: str) -> list[dict[str, Any]]:
    rows = _output(spark, bootstrap, topic).select("key", "value", "headers").collect()
    return [
        {
            "key": r.key,
            "value": r.value,
            "headers": [(h.key, bytes(h.value).decode()) for h in r.headers],
        }
        for r in rows
    ]


def _offsets_done(
    spark: SparkSession, bootstrap: str, predictions: str, dead: str, count: int
) -> bool:
    scored = {p["offset"] for p in _predictions(spark, bootstrap, predictions)}
    rejected = {
        int(dict(d["headers"])["source_offset"]) for d in _dead_letters(spark, bootstrap, dead)
    }
    return set(range(count)) <= scored | rejected


def _served_metrics(port: int) -> dict[str, float]:
    """The samples ``/metrics`` serves on ``port``, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def _refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "which was rejected" in r.getMessage()]


def test_realtime_scores_into_topics_as_the_service_would_and_follows_the_alias(
    spark: SparkSession,
    registry: Registry,
    base_model,  # type: ignore[no-untyped-def]
    tracking_store: TrackingStore,
    kafka_bootstrap: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = _topic(kafka_bootstrap, "events")
    predictions, dead = _topic(kafka_bootstrap, "predictions"), _topic(kafka_bootstrap, "dead")
    v1 = registry.register_spark(base_model, training_frame(spark))
    metrics_port = free_port()
    first = mixed_events(28)
    produce(kafka_bootstrap, source, first)
    argv = [
        "realtime",
        "--bootstrap-servers", kafka_bootstrap,
        "--topic", source,
        "--predictions-topic", predictions,
        "--dead-letter-topic", dead,
        "--model-uri", f"models:/{registry.name}@champion",
        "--checkpoint", str(tmp_path / "checkpoint"),
        "--model-poll-seconds", "1",
        # Spark's shortest: a swap waits for the next boundary.
        "--checkpoint-interval", "5s",
        "--metrics-port", str(metrics_port),
    ]  # fmt: skip
    produced = [len(first)]
    served: dict[str, float] = {}
    final: list[int] = []
    refused: list[str] = []
    failures: list[BaseException] = []
    running = threading.Event()

    def until(condition: Callable[[], object], what: str, interval_s: float = 0.5) -> None:
        def met() -> object:
            assert running.is_set(), "the command ended"
            return condition()

        wait_until(met, what, timeout_s=120, interval_s=interval_s)

    def drive() -> None:
        try:
            until(
                lambda: _offsets_done(spark, kafka_bootstrap, predictions, dead, produced[0]),
                "the first events in the output topics",
            )
            # A version real-time mode cannot serve is refused; the current one keeps serving.
            example = pd.DataFrame([event(i) for i in range(3)])[FEATURES]
            refused.append(registry.register_pyfunc(RaisingModel(), example, alias="champion"))
            until(lambda: _refusals(caplog), "the pyfunc version refused")
            registry.register_spark(
                fit_pipeline(training_frame(spark, slope=80.0)), training_frame(spark)
            )

            def swapped() -> bool:
                # Events keep arriving while the new version is checked and the query restarts.
                produce(kafka_bootstrap, source, mixed_events(3, start=produced[0]), produced[0])
                produced[0] += 3
                versions = {
                    p["model_version"] for p in _predictions(spark, kafka_bootstrap, predictions)
                }
                return v1 != max(versions)

            until(swapped, "a prediction of the new version", interval_s=1)
            start = produced[0]
            produce(kafka_bootstrap, source, mixed_events(14, start=start), start)
            produced[0] += 14
            final.extend(range(start, produced[0]))
            until(
                lambda: _offsets_done(spark, kafka_bootstrap, predictions, dead, produced[0]),
                "the last events in the output topics",
            )
            served.update(_served_metrics(metrics_port))
        except BaseException as e:
            failures.append(e)
        finally:
            while running.is_set():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(2)

    # A SIGTERM that arrives outside the command (it ended early) must not end the test run.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    driver = threading.Thread(target=drive, name="realtime-test-driver")
    running.set()
    driver.start()
    try:
        code = main(argv, {"MLFLOW_TRACKING_URI": tracking_store.tracking_uri})
    finally:
        running.clear()
        driver.join(timeout=400)
        signal.signal(signal.SIGTERM, previous)
    assert not failures, failures
    assert code == 0

    records = read_kafka_topic(spark, kafka_bootstrap, source)
    assert records.count() == produced[0]
    scored = _predictions(spark, kafka_bootstrap, predictions)
    letters = _dead_letters(spark, kafka_bootstrap, dead)
    versions = {p["model_version"] for p in scored}
    assert len(versions) == 2 and v1 in versions and refused[0] not in versions
    v2 = max(versions)
    assert [f"MLlib models only; {registry.name} v{refused[0]} is a pyfunc" in m
            for m in _refusals(caplog)] == [True]  # fmt: skip

    # Served while it ran: the version it serves, the one swap, and the checkpoints' figures
    # (the records read until the newest checkpoint, at most those produced).
    assert served["inference_model_version"] == int(v2)
    assert served["inference_model_swaps_total"] == 1
    assert served["inference_batches_total"] >= 1
    assert 0 < served["inference_records_in_total"] <= produced[0]

    # Every input offset is in one of the two topics, at least once, and never in both.
    scored_offsets = {p["offset"] for p in scored}
    rejected_offsets = {int(dict(d["headers"])["source_offset"]) for d in letters}
    assert scored_offsets | rejected_offsets == set(range(produced[0]))
    assert not scored_offsets & rejected_offsets
    # Events sent after the new version first scored one are scored by it alone.
    assert {p["model_version"] for p in scored if p["offset"] in final} == {v2}

    # Predictions are those of the micro-batch service's code path, version by version.
    for version in versions:
        model = ModelProvider(spark, f"models:/{registry.name}/{version}", registry.client).start()
        judged = EventJudge(model.schema).judge(records)
        expected = {
            r.offset: (r.prediction, r.event_id, r.key, r.timestamp)
            for r in model.score(valid_rows(judged)).collect()
        }
        got = [p for p in scored if p["model_version"] == version]
        assert got and all(
            (p["prediction"], p["event_id"], p["key"], p["timestamp"]) == expected[p["offset"]]
            for p in got
        )
        assert {(p["model_name"], p["model_run_id"]) for p in got} == {
            (registry.name, model.identity.run_id)
        }
    # The same schema for both versions: the same records fail the parse.
    rejected = {r.offset: r for r in rejected_rows(judged).collect()}
    assert all(p["record_key"] == p["key"].encode() for p in scored)
    assert all(p["topic"] == source and p["partition"] == 0 for p in scored)
    assert all(p["scored_at"] >= p["timestamp"] for p in scored)
    # The JSON names every field of the contract, nulls included.
    assert set(json.loads(scored[0]["json"])) == set(REALTIME_PREDICTION_SCHEMA.fieldNames())

    # Dead letters carry the source bytes unchanged and the service's error kind and detail.
    assert {int(dict(d["headers"])["source_offset"]) for d in letters} == set(rejected)
    for letter in letters:
        headers = dict(letter["headers"])
        assert [name for name, _ in letter["headers"]] == list(DEAD_LETTER_HEADERS)
        source_record = rejected[int(headers["source_offset"])]
        assert (letter["key"], letter["value"]) == (source_record.key, source_record.value)
        assert (headers["error_kind"], headers["error_detail"]) == (
            source_record.error_kind,
            source_record.error_detail,
        )
        assert headers["source_topic"] == source and headers["source_partition"] == "0"
        stamp = datetime.fromtimestamp(source_record.timestamp.timestamp(), UTC)
        assert headers["source_timestamp"] == stamp.isoformat(timespec="milliseconds").replace(
            "+00:00", "Z"
        )
    kinds = {dict(d["headers"])["error_kind"] for d in letters}
    assert {
        "malformed_json",
        "missing_field",
        "type_mismatch",
        "invalid_utf8",
        "tombstone",
    } <= kinds

    # Landed by `land` (at-least-once topics, records a restart wrote again included): every
    # source offset in exactly one row of exactly one table, each as the topics said.
    landed_at = {name: tmp_path / f"landed-{name}" for name in ("predictions", "quarantine")}
    land = [
        "land",
        "--bootstrap-servers", kafka_bootstrap,
        "--predictions-topic", predictions,
        "--dead-letter-topic", dead,
        "--predictions-table", str(landed_at["predictions"]),
        "--quarantine-table", str(landed_at["quarantine"]),
        "--checkpoint", str(tmp_path / "landing-checkpoint"),
        "--trigger", "available-now",
    ]  # fmt: skip
    assert main(land, {}) == 0
    landed, quarantined = (
        spark.read.format("delta").load(str(path)).collect() for path in landed_at.values()
    )
    assert sorted(r.offset for r in [*landed, *quarantined]) == list(range(produced[0]))
    assert {(r.topic, r.partition) for r in [*landed, *quarantined]} == {(source, 0)}
    first_scored = {
        p["offset"]: p for p in sorted(scored, key=lambda p: p["scored_at"], reverse=True)
    }
    assert all(
        (r.prediction, r.model_version) == (first_scored[r.offset]["prediction"],
                                            first_scored[r.offset]["model_version"])
        for r in landed
    )  # fmt: skip
    assert {r.offset: r.error_kind for r in quarantined} == {
        o: r.error_kind for o, r in rejected.items()
    }


@pytest.mark.parametrize(
    "case", ["pyfunc model", "unknown model", "too few slots", "missing topic", "no broker"]
)
def test_what_real_time_mode_cannot_run_stops_at_start_with_one_line(
    case: str,
    spark: SparkSession,
    registry: Registry,
    tracking_store: TrackingStore,
    kafka_bootstrap: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The shared session has 2 task slots; a topic with 3 partitions needs 3.
    source = _topic(kafka_bootstrap, "events", partitions=3 if case == "too few slots" else 1)
    predictions = _topic(kafka_bootstrap, "predictions")
    if case == "pyfunc model":
        example = pd.DataFrame([event(i) for i in range(3)])[FEATURES]
        registry.register_pyfunc(RaisingModel(), example, alias="champion")
    model = "never-registered" if case == "unknown model" else registry.name
    broker = f"127.0.0.1:{free_port()}" if case == "no broker" else kafka_bootstrap
    argv = [
        "realtime",
        "--bootstrap-servers", broker,
        "--topic", source,
        "--predictions-topic", predictions,
        "--dead-letter-topic", "never-created" if case == "missing topic" else f"{source}-dead",
        "--model-uri", f"models:/{model}@champion",
        "--checkpoint", str(tmp_path / "checkpoint"),
    ]  # fmt: skip
    if case != "missing topic":
        create_topic(kafka_bootstrap, f"{source}-dead", 1)
    capsys.readouterr()  # what registering the model printed

    assert main(argv, {"MLFLOW_TRACKING_URI": tracking_store.tracking_uri}) == 2

    expected = {
        "pyfunc model": (
            f"error: real-time mode scores MLlib models only; {registry.name} v1 is a pyfunc "
            "model (flavors python_function): use `python -m streaming run` "
            "(micro-batch, exactly once into Delta) to serve it"
        ),
        "too few slots": (
            f"error: real-time mode runs one long-running task per partition: topic {source} "
            "has 3 partitions but Spark has 2 task slots; give it 4 cores or more (e.g. "
            "--master local[4]; one more than the partitions lets a new model version be "
            "checked while the query runs)"
        ),
        "missing topic": (
            f"error: topic never-created does not exist on {kafka_bootstrap}: create it first "
            "(realtime creates no topics)"
        ),
    }
    lines = capsys.readouterr().err.strip().splitlines()
    if case == "unknown model":
        # The registry's own words follow (whatever MLflow calls it).
        assert len(lines) == 1
        assert lines[0].startswith("error: cannot serve models:/never-registered@champion: ")
    elif case == "no broker":
        assert len(lines) == 1
        assert lines[0].startswith(f"error: no Kafka broker reachable at {broker} (")
    else:
        assert lines == [expected[case]]
    assert not [q for q in spark.streams.active if q.name == "realtime"]
