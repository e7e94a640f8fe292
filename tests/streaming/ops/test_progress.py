"""The per-batch log line: the batch's own lag from its progress report, joined by batch id."""

from __future__ import annotations

import json
import logging

import pytest

from infra.logs import configure_logging
from streaming.ops.metrics import ServiceMetrics
from streaming.ops.outcome import BatchOutcome
from streaming.ops.progress import BatchLogListener, offsets_behind

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
