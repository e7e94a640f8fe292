"""The service as users run it: ``python -m streaming run`` in its own process.

Crashes are real: the process group (Python driver and its JVM) gets SIGKILL mid-stream.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import deltalake
import pytest
from pyspark.sql import SparkSession

from infra.tracking import TrackingStore
from tests.conftest import PROJECT_ROOT
from tests.streaming.conftest import Registry, mixed_events, training_frame
from tests.streaming.query.faults import (
    Campaign,
    LiveProducer,
    ServiceProcess,
)
from tests.support import report_fault, send


def _options(
    kafka_bootstrap: str, topic: str, registry: Registry, tmp_path: Path, max_offsets: int = 40
) -> dict[str, str]:
    return {
        "bootstrap-servers": kafka_bootstrap,
        "topic": topic,
        "model-uri": f"models:/{registry.name}@champion",
        "predictions-table": str(tmp_path / "predictions"),
        "quarantine-table": str(tmp_path / "quarantine"),
        "checkpoint": str(tmp_path / "checkpoint"),
        "query-name": "crash-test",
        "max-offsets-per-trigger": str(max_offsets),
        "master": "local[2]",
        "conf": "spark.ui.enabled=false",
    }


@dataclass(frozen=True)
class Plan:
    """How hard a fault campaign pushes: CI runs the short one, ``scripts/faults`` the long."""

    preloaded: int  # events in the topic before the service first starts
    rate: float  # events per second produced live for the whole campaign
    random_kills: int
    aimed_kills: int  # between a batch's Delta commit and its checkpoint commit
    broker_restarts: int
    sigterms: int  # mid-stream: the service stops after its batch in flight, exit code 0
    max_offsets: int  # per micro-batch
    kill_within_s: float  # a random kill lands this long after a start's first commit, at most


SHORT = Plan(600, 5, random_kills=5, aimed_kills=1, broker_restarts=1, sigterms=1,
             max_offsets=300, kill_within_s=3)  # fmt: skip
LONG = Plan(1_000_000, 200, random_kills=14, aimed_kills=6, broker_restarts=2, sigterms=2,
            max_offsets=20_000, kill_within_s=10)  # fmt: skip


def test_fault_campaign_kills_and_a_broker_restart_while_events_flow_lose_and_double_nothing(
    spark: SparkSession,
    registry: Registry,
    base_model,  # type: ignore[no-untyped-def]
    tracking_store: TrackingStore,
    kafka_bootstrap: str,
    topic: str,
    tmp_path: Path,
    restart_broker: Callable[[float], None],
    request: pytest.FixtureRequest,
) -> None:
    plan = LONG if request.config.getoption("--long") else SHORT
    registry.register_spark(base_model, training_frame(spark))
    send(kafka_bootstrap, topic, _keyed(mixed_events(plan.preloaded)))
    service = ServiceProcess(
        tmp_path,
        tracking_store,
        _options(kafka_bootstrap, topic, registry, tmp_path, plan.max_offsets),
    )
    campaign = Campaign(service, tmp_path / "predictions", tmp_path / "checkpoint", restart_broker)
    faults = (
        ["random"] * plan.random_kills
        + ["aimed"] * plan.aimed_kills
        + ["broker"] * plan.broker_restarts
        + ["sigterm"] * plan.sigterms
    )
    campaign.rng.shuffle(faults)
    producer = LiveProducer(
        kafka_bootstrap, topic, lambda i: mixed_events(1, start=i)[0], plan.preloaded, plan.rate
    )
    producer.start()
    try:
        for fault in faults:
            if fault == "random":
                campaign.kill_at_random(plan.kill_within_s)
            elif fault == "aimed":
                campaign.kill_between_commits()
            elif fault == "sigterm":
                campaign.stop_mid_stream(plan.kill_within_s)
            else:
                campaign.restart_the_broker()
        produced = plan.preloaded + producer.finish()
        campaign.drain_and_stop(produced)
    finally:
        producer.halt()
        campaign.abandon()

    verdict = verify_command(service, kafka_bootstrap, topic, tmp_path, timeout_s=3600)
    report_fault(
        f"kill -9 ({plan.random_kills} random, {plan.aimed_kills} aimed between commits), "
        f"SIGTERM x{plan.sigterms}, broker restarts, live producer",
        verdict,
        kills=campaign.kills,
        restarts=service.runs - 1,
        broker_restarts=campaign.broker_restarts,
        first_commit_s=max(campaign.first_commit_s[1:]),
    )
    assert verdict["ok"], verdict
    assert (verdict["records"], verdict["landed"]) == (produced, produced)
    scored = deltalake.DeltaTable(str(tmp_path / "predictions")).to_pyarrow_table().num_rows
    assert verdict["rescored"] == scored > 0  # every prediction reproduced by its version
    # Each kill between the commits was followed by a start that re-ran the begun batch.
    replays = sum("before the restart" in service.log(run) for run in range(1, service.runs + 1))
    assert campaign.aimed_hits == plan.aimed_kills and replays >= campaign.aimed_hits


def _keyed(values: list[bytes | None]) -> list[tuple[bytes | None, bytes | None]]:
    return [(f"listing-{i}".encode(), v) for i, v in enumerate(values)]


def verify_command(
    service: ServiceProcess, bootstrap: str, topic: str, tmp_path: Path, timeout_s: float = 300
) -> dict[str, object]:
    """``python -m streaming verify --output json`` on the service's topic and tables."""
    result = subprocess.run(
        [sys.executable, "-m", "streaming", "verify", "--output", "json",
         "--bootstrap-servers", bootstrap, "--topic", topic,
         "--predictions-table", str(tmp_path / "predictions"),
         "--quarantine-table", str(tmp_path / "quarantine"), "--master", "local[2]"],
        env=service.env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout_s,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    verdict: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return verdict


def test_a_configuration_error_is_one_line_and_exit_code_2(
    tracking_store: TrackingStore, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_store.tracking_uri,
        "PYSPARK_PYTHON": sys.executable,
    }
    result = subprocess.run(
        [sys.executable, "-m", "streaming", "run",
         "--bootstrap-servers", kafka_bootstrap, "--topic", topic,
         "--model-uri", "models:/never-registered@champion",
         "--predictions-table", str(tmp_path / "p"), "--quarantine-table", str(tmp_path / "q"),
         "--checkpoint", str(tmp_path / "c"), "--master", "local[1]", "--home", str(tmp_path)],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    # At the default log level the user's error is all there is: Spark's start-up output went
    # to the home's log file.
    assert result.stderr.splitlines() == [
        f"error: cannot serve models:/never-registered@champion: {_registry_says(result.stderr)}"
    ]
    assert (tmp_path / ".local" / "logs" / "spark.log").stat().st_size > 0


def _registry_says(stderr: str) -> str:
    """The registry's own words after the service's prefix (whatever MLflow calls it)."""
    return stderr.strip().partition("cannot serve models:/never-registered@champion: ")[2]


def test_a_missing_option_is_reported_before_spark_starts(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streaming", "run", "--topic", "t"],
        env={k: v for k, v in os.environ.items() if not k.startswith("STREAMING_")},
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --bootstrap-servers is required (or set STREAMING_BOOTSTRAP_SERVERS)"
    )
