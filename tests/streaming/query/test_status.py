"""``python -m streaming status``: lag per partition, last batch and model, read without Spark."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession

from streaming.cli import main
from streaming.ops.metrics import ServiceMetrics
from streaming.query.service import InferenceService
from streaming.settings import ServiceSettings
from tests.streaming.conftest import Registry, mixed_events, produce, training_frame


def test_status_shows_the_lag_the_last_batch_and_its_model_version(
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
    produce(kafka_bootstrap, topic, mixed_events(12, bad_every=0))
    service = InferenceService(spark, settings, registry.client, ServiceMetrics())
    service.start()
    service.run_until_stopped()
    produce(kafka_bootstrap, topic, mixed_events(5, start=12, bad_every=0), start_key=12)
    assert settings.checkpoint is not None

    argv = [
        "status",
        "--checkpoint",
        settings.checkpoint,
        "--query-name",
        settings.query_name,
        "--bootstrap-servers",
        kafka_bootstrap,
        "--predictions-table",
        settings.predictions_table,
    ]
    capsys.readouterr()  # what registering the model printed
    assert main(argv, {}) == 0

    captured = capsys.readouterr()
    out = captured.out
    assert "WARNING" not in captured.err and "warning" not in captured.err
    assert f"model version of last batch: {version}" in out
    assert "rows in last batch: 12" in out
    lags = [line.split("\t") for line in out.splitlines() if line.startswith(topic)]
    assert sorted(int(fields[1]) for fields in lags) == [0, 1]
    assert sum(int(fields[4]) for fields in lags) == 5


def test_status_of_a_missing_checkpoint_says_what_to_give(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["status", "--checkpoint", "/nonexistent/ckpt"], {}) == 2
    assert "no checkpoint at /nonexistent/ckpt" in capsys.readouterr().err
