"""The per-batch log line: the batch's own lag from its progress report, joined by batch id."""

from __future__ import annotations

import json
import logging
import uuid
from types import SimpleNamespace

import pytest

from infra.logs import configure_logging
from streaming.ops.metrics import ServiceMetrics
from streaming.ops.outcome import BatchOutcome
from streaming.ops.progress import BatchLogListener, offsets_behind, partition_lag

PROGRESS = {
    "name": "inference",
    "batchId": 4,
    "numInputRows": 10,
    "durationMs": {"triggerExecution": 812},
    "sources": [
        {"metrics": {"maxOffsetsBehindLatest": "3"}},
        {"metrics": {"maxOffsetsBehindLatest": "12"}},
    ],
}


def test_the_lag_is_the_largest_over_the_sources() -> None:
    assert offsets_behind(PROGRESS) == 12
    assert offsets_behind({"sources": [{"metrics": {}}]}) is None


def test_one_json_line_per_batch_with_the_processors_figures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    outcome = BatchOutcome(4, 10, 9, 1, "2", 0.5)
    metrics = ServiceMetrics()
    listener = BatchLogListener("inference", {4: outcome}.get, metrics)
    configure_logging("INFO", "json")
    try:
        listener.report(PROGRESS)
    finally:
        configure_logging("INFO", "text")

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    batch = [line for line in lines if line.get("event") == "batch"]
    assert len(batch) == 1
    assert {k: batch[0][k] for k in ("batch_id", "rows_in", "predictions", "quarantined")} == {
        "batch_id": 4,
        "rows_in": 10,
        "predictions": 9,
        "quarantined": 1,
    }
    assert (batch[0]["model_version"], batch[0]["offsets_behind_latest"]) == ("2", 12)
    assert batch[0]["level"] == "INFO" and batch[0]["logger"] == "streaming.batch"
    assert metrics.offsets_behind._value.get() == 12
    logging.getLogger("streaming.batch").handlers.clear()


def test_a_batch_is_reported_once_and_its_skipped_offsets_are_logged_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = ServiceMetrics()
    listener = BatchLogListener(
        "inference", {}.get, metrics, earliest_offsets=lambda topic: {0: 16}
    )
    report = {
        "name": "inference",
        "batchId": 7,
        "numInputRows": 4,
        "sources": [
            {"startOffset": {"t": {"0": 10}}, "endOffset": {"t": {"0": 20}}, "numInputRows": 4}
        ],
    }

    with caplog.at_level(logging.INFO, logger="streaming.batch"):
        fields = listener.report(report)
        again = listener.report(report)  # the listener and catch_up may both see a batch

    assert fields is not None and fields["offsets_skipped"] == 6 and again is None
    assert metrics.offsets_skipped.labels(topic="t", partition="0")._value.get() == 6
    skipped = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in skipped] == [
        "batch 7 skipped t/0 offsets 10 to 15: deleted by retention before they were read; "
        "they are in neither table"
    ]


def test_a_batch_that_read_its_records_twice_counts_them_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Offsets 10-19 were planned; 10-13 were deleted by retention first. The batch read the 6
    # left, then read them again for its quarantine: Spark's report counts 12.
    metrics = ServiceMetrics()
    outcome = BatchOutcome(7, 6, 2, 4, "1", 0.5)
    listener = BatchLogListener(
        "inference", {7: outcome}.get, metrics, earliest_offsets=lambda topic: {0: 14}
    )
    report = {
        "name": "inference",
        "batchId": 7,
        "numInputRows": 12,
        "sources": [
            {"startOffset": {"t": {"0": 10}}, "endOffset": {"t": {"0": 20}}, "numInputRows": 12}
        ],
    }

    with caplog.at_level(logging.INFO, logger="streaming.batch"):
        fields = listener.report(report)

    assert fields is not None and (fields["rows_in"], fields["offsets_skipped"]) == (6, 4)


# The shape of a real Kafka progress report (Spark 4.2), two topics' partitions behind.
KAFKA_PROGRESS = {
    "id": "5713c053-e055-47ac-af6c-ac2c9223506a",
    "name": "inference",
    "batchId": 9,
    "numInputRows": 14,
    "inputRowsPerSecond": 2.5,
    "processedRowsPerSecond": 0.9,
    "durationMs": {"addBatch": 13314, "triggerExecution": 1500},
    "sources": [
        {
            "description": "KafkaV2[Subscribe[listings,listings-eu]]",
            "startOffset": {"listings": {"0": 0, "1": 4}},
            "endOffset": {"listings": {"0": 3, "1": 11}, "listings-eu": {"0": 5}},
            "latestOffset": {"listings": {"0": 3, "1": 19}, "listings-eu": {"0": 7}},
            "numInputRows": 14,
            "metrics": {"maxOffsetsBehindLatest": "8"},
        }
    ],
}


def _samples(metrics: ServiceMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in metrics.registry.collect()
        for s in family.samples
    }


def test_an_idle_trigger_caught_up_after_the_stop_is_not_a_batch(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # After batch 10, a trigger that read nothing leaves a report for "batch 11" in
    # recentProgress; no batch 11 ran, so catch_up logs no line for it.
    listener = BatchLogListener("inference", {}.get, ServiceMetrics())
    idle = {**PROGRESS, "batchId": 11, "numInputRows": 0,
            "durationMs": {"latestOffset": 9, "triggerExecution": 18}}  # fmt: skip
    configure_logging("INFO", "json")
    try:
        assert listener.report(idle) is None
        listener.catch_up([SimpleNamespace(json=json.dumps(idle))])
        ran = {**idle, "durationMs": {"addBatch": 3, "triggerExecution": 18}}
        assert listener.report(ran) is not None  # an empty batch that ran is still a batch
    finally:
        configure_logging("INFO", "text")

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["batch_id"] for line in lines if line.get("event") == "batch"] == [11]
    logging.getLogger("streaming.batch").handlers.clear()


def test_the_progress_report_sets_rates_trigger_duration_and_lag_per_partition() -> None:
    metrics = ServiceMetrics()
    listener = BatchLogListener("inference", {}.get, metrics)

    listener.report(KAFKA_PROGRESS)
    # A batch the listener missed, reported late by catch_up: its duration is observed, but
    # the gauges keep the newer batch's figures.
    listener.report({**KAFKA_PROGRESS, "batchId": 8, "inputRowsPerSecond": 99.0,
                     "durationMs": {"triggerExecution": 200}})  # fmt: skip

    samples = _samples(metrics)
    assert partition_lag(KAFKA_PROGRESS) == {
        ("listings", 0): 0,
        ("listings", 1): 8,
        ("listings-eu", 0): 2,
    }
    lag = {
        labels: value
        for (name, labels), value in samples.items()
        if name == "inference_partition_offsets_behind_latest"
    }
    assert lag == {
        (("partition", "0"), ("topic", "listings")): 0,
        (("partition", "1"), ("topic", "listings")): 8,
        (("partition", "0"), ("topic", "listings-eu")): 2,
    }
    assert samples["inference_offsets_behind_latest", ()] == 8
    assert samples["inference_input_rows_per_second", ()] == 2.5
    assert samples["inference_processed_rows_per_second", ()] == 0.9
    assert samples["inference_last_trigger_seconds", ()] == 1.5
    assert samples["inference_trigger_seconds_count", ()] == 2
    assert samples["inference_trigger_seconds_sum", ()] == 1.7
    assert samples["inference_trigger_seconds_bucket", (("le", "0.25"),)] == 1
    assert samples["inference_trigger_seconds_bucket", (("le", "2.5"),)] == 2

    # Idle (no new records): the rates fall to 0; another query's idle event changes nothing.
    listener.onQueryIdle(SimpleNamespace(id=uuid.uuid4()))
    assert metrics.input_rows_per_second._value.get() == 2.5
    listener.onQueryIdle(SimpleNamespace(id=uuid.UUID(KAFKA_PROGRESS["id"])))
    samples = _samples(metrics)
    assert samples["inference_input_rows_per_second", ()] == 0
    assert samples["inference_processed_rows_per_second", ()] == 0


def test_a_source_without_kafka_offsets_has_no_partition_lag() -> None:
    assert partition_lag({"sources": [{"endOffset": "42", "latestOffset": "not json"}]}) == {}
    assert partition_lag({"sources": [{"endOffset": None, "latestOffset": None}]}) == {}
