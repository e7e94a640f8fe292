"""``python -m streaming status``: lag per partition, last batch and model, read without Spark."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession

from streaming.cli import main
from streaming.settings import ServiceSettings
from tests.streaming.conftest import Registry, mixed_events, produce, training_frame
from tests.streaming.query.test_service import run_once


def _status(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["status", *argv], {})
    captured = capsys.readouterr()
    assert "WARNING" not in captured.err and "warning" not in captured.err
    return code, captured.out


def test_status_shows_the_lag_falling_to_zero_and_works_as_a_health_check(
    spark: SparkSession,
    registry: Registry,
    base_model: PipelineModel,
    topic: str,
    kafka_bootstrap: str,
    service_settings: Callable[..., ServiceSettings],
    capsys: pytest.CaptureFixture[str],
) -> None:
    version = registry.register_spark(base_model, training_frame(spark))
    settings = service_settings(f"models:/{registry.name}@champion")
    produce(kafka_bootstrap, topic, mixed_events(14))  # 2 of them malformed
    run_once(spark, registry, settings)
    produce(kafka_bootstrap, topic, mixed_events(5, start=14, bad_every=0), start_key=14)
    assert settings.checkpoint is not None
    argv = [
        "--checkpoint", settings.checkpoint,
        "--query-name", settings.query_name,
        "--bootstrap-servers", kafka_bootstrap,
        "--predictions-table", settings.predictions_table,
        "--quarantine-table", settings.quarantine_table,
    ]  # fmt: skip
    capsys.readouterr()  # what registering the model printed

    code, out = _status(argv, capsys)  # the 5 new records arrived just now: not stalled
    assert code == 0
    assert f"model version of last batch: {version}" in out
    assert "rows in last batch: 12" in out
    assert "lag: 5" in out and "quarantined by kind: malformed_json 1, missing_field 1" in out
    assert out.splitlines()[-1] == "healthy"
    lags = [line.split("\t") for line in out.splitlines() if line.startswith(topic)]
    assert sorted(int(fields[1]) for fields in lags) == [0, 1]
    assert sum(int(fields[4]) for fields in lags) == 5

    code, out = _status([*argv, "--max-lag", "4", "--output", "json"], capsys)
    report = json.loads(out)
    assert code == 1 and not report["healthy"]
    assert report["problems"] == ["behind by 5 records (more than --max-lag 4)"]
    assert (report["lag"], report["model_version"]) == (5, version)
    assert report["quarantined_by_kind"] == {"malformed_json": 1, "missing_field": 1}

    time.sleep(1.5)  # the 5 records have now waited longer than the limit below
    code, out = _status([*argv, "--max-stall-seconds", "1"], capsys)
    assert code == 1
    assert out.splitlines()[-1] == (
        "unhealthy: stalled: 5 records waiting for more than 1 s (--max-stall-seconds)"
    )

    run_once(spark, registry, settings)  # catches up
    code, out = _status(
        [*argv, "--max-lag", "0", "--max-stall-seconds", "1", "--output", "json"], capsys
    )
    report = json.loads(out)
    assert code == 0 and report["healthy"] and report["problems"] == []
    assert report["lag"] == 0 and [p["lag"] for p in report["partitions"]] == [0, 0]
    assert report["last_batch_rows"] == 5 and report["seconds_since_last_batch"] < 60


def test_status_of_a_missing_checkpoint_says_what_to_give(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["status", "--checkpoint", "/nonexistent/ckpt"], {}) == 2
    assert "no checkpoint at /nonexistent/ckpt" in capsys.readouterr().err
