"""The service as users run it: ``python -m streaming run`` in its own process.

Crashes are real: the process group (Python driver and its JVM) gets SIGKILL mid-stream.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import deltalake
from pyspark.sql import SparkSession

from infra.tracking import TrackingStore
from streaming.query.status import committed_offsets
from streaming.query.verify import check_offsets
from tests.conftest import PROJECT_ROOT
from tests.streaming.conftest import (
    Registry,
    all_offsets_once,
    mixed_events,
    produce,
    training_frame,
)
from tests.support import report_fault, wait_until


class ServiceProcess:
    """One ``python -m streaming run`` with its options, logging to a file."""

    def __init__(self, tmp_path: Path, store: TrackingStore, options: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": store.tracking_uri,
            "PYSPARK_PYTHON": sys.executable,
            "STREAMING_SPARK_LOG_LEVEL": "ERROR",
        }
        self.args = [sys.executable, "-m", "streaming", "run"]
        for key, value in options.items():
            self.args += [f"--{key}", value]
        self.runs = 0

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        self.runs += 1
        log = open(self.tmp_path / f"service-{self.runs}.log", "wb")  # noqa: SIM115
        return subprocess.Popen(
            [*self.args, *extra],
            env=self.env,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return (self.tmp_path / f"service-{self.runs}.log").read_text(errors="replace")


def committed_batches(table: Path) -> int:
    try:
        return len(deltalake.DeltaTable(str(table)).history()) - 1  # minus the CREATE
    except Exception:
        return 0


def wait_for_batches(
    table: Path, at_least: int, process: subprocess.Popen[bytes], timeout_s: float = 180
) -> int:
    def batches() -> int:
        assert process.poll() is None, "service exited early"
        found = committed_batches(table)
        return found if found >= at_least else 0

    return wait_until(batches, f"{at_least} batches in {table}", timeout_s, interval_s=0.2)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)


def _options(
    kafka_bootstrap: str, topic: str, registry: Registry, tmp_path: Path
) -> dict[str, str]:
    return {
        "bootstrap-servers": kafka_bootstrap,
        "topic": topic,
        "model-uri": f"models:/{registry.name}@champion",
        "predictions-table": str(tmp_path / "predictions"),
        "quarantine-table": str(tmp_path / "quarantine"),
        "checkpoint": str(tmp_path / "checkpoint"),
        "query-name": "crash-test",
        "max-offsets-per-trigger": "40",
        "master": "local[2]",
        "conf": "spark.ui.enabled=false",
    }


def test_kill_9_mid_stream_then_restart_lands_every_offset_once(
    spark: SparkSession,
    registry: Registry,
    base_model,  # type: ignore[no-untyped-def]
    tracking_store: TrackingStore,
    kafka_bootstrap: str,
    topic: str,
    tmp_path: Path,
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    produced = 600  # 15 batches of 40: the kills below all land mid-stream
    produce(kafka_bootstrap, topic, mixed_events(produced))
    service = ServiceProcess(
        tmp_path, tracking_store, _options(kafka_bootstrap, topic, registry, tmp_path)
    )
    predictions = tmp_path / "predictions"

    seen = 0
    first_commit_s = []
    kills = (1, 2, 2, 1, 2)  # batches to wait for before each kill -9
    for kill_after in kills:
        began = time.monotonic()
        process = service.start("--trigger", "500ms")
        wait_for_batches(predictions, seen + 1, process)
        first_commit_s.append(time.monotonic() - began)
        seen = wait_for_batches(predictions, seen + kill_after, process)
        time.sleep(0.3 * kill_after)  # land somewhere inside a later batch
        kill_group(process)
        seen = committed_batches(predictions)  # a batch may have landed during the sleep

    final = service.start("--trigger", "available-now")
    assert final.wait(300) == 0, service.log()

    all_offsets_once(spark, str(predictions), str(tmp_path / "quarantine"), produced)
    verdict = verify_command(service, kafka_bootstrap, topic, tmp_path)
    report_fault(
        "kill -9 of the process group",
        verdict,
        len(kills),
        len(kills),
        first_commit_s=max(first_commit_s[1:]),
    )
    assert verdict["ok"], verdict
    assert (verdict["records"], verdict["landed"]) == (produced, produced)
    scored = deltalake.DeltaTable(str(predictions)).to_pyarrow_table().num_rows
    assert verdict["rescored"] == scored > 0  # every prediction reproduced by its version


def verify_command(
    service: ServiceProcess, bootstrap: str, topic: str, tmp_path: Path
) -> dict[str, object]:
    """``python -m streaming verify --output json`` on the service's topic and tables."""
    result = subprocess.run(
        [sys.executable, "-m", "streaming", "verify", "--output", "json",
         "--bootstrap-servers", bootstrap, "--topic", topic,
         "--predictions-table", str(tmp_path / "predictions"),
         "--quarantine-table", str(tmp_path / "quarantine"), "--master", "local[2]"],
        env=service.env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    verdict: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return verdict


def test_sigterm_stops_after_the_batch_in_flight_with_exit_code_0(
    spark: SparkSession,
    registry: Registry,
    base_model,  # type: ignore[no-untyped-def]
    tracking_store: TrackingStore,
    kafka_bootstrap: str,
    topic: str,
    tmp_path: Path,
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    produce(kafka_bootstrap, topic, mixed_events(200))
    service = ServiceProcess(
        tmp_path, tracking_store, _options(kafka_bootstrap, topic, registry, tmp_path)
    )
    process = service.start("--trigger", "500ms")
    wait_for_batches(tmp_path / "predictions", 2, process)

    process.send_signal(signal.SIGTERM)
    assert process.wait(120) == 0, service.log()
    log = service.log()
    assert "stop requested" in log
    assert '"event": "batch"' in log

    committed = max(
        int(p.name) for p in (tmp_path / "checkpoint" / "commits").iterdir() if p.name.isdigit()
    )
    last_in_table = max(
        r.batch_id
        for r in spark.read.format("delta")
        .load(str(tmp_path / "predictions"))
        .select("batch_id")
        .distinct()
        .collect()
    )
    assert last_in_table <= committed + 1
    assert group_members_after(process.pid, grace_s=10) == []
    # Nothing lost: every offset the checkpoint says was read landed once (the verifier, on
    # the range read so far; the rest of the topic is read after a restart).
    _, ends = committed_offsets(tmp_path / "checkpoint")
    read = spark.createDataFrame(
        [(topic, p, o) for p, end in ends[topic].items() for o in range(end)],
        "topic string, partition int, offset bigint",
    )
    verdict = check_offsets(
        read,
        spark.read.format("delta").load(str(tmp_path / "predictions")),
        spark.read.format("delta").load(str(tmp_path / "quarantine")),
        topics=(topic,),
    )
    report_fault("SIGTERM mid-stream", json.loads(verdict.to_json()))
    assert verdict.ok and verdict.records > 0, verdict.render()


def group_members_after(session: int, grace_s: float) -> list[str]:
    """Processes of ``session`` still alive after ``grace_s`` (Python workers exit on their own
    once the JVM is gone, a moment after it)."""
    deadline = time.monotonic() + grace_s
    while True:
        found = subprocess.run(
            ["ps", "-o", "pid=,args=", "-g", str(session)], capture_output=True, text=True
        )
        members = [line.strip()[:200] for line in found.stdout.splitlines() if line.strip()]
        if not members or time.monotonic() > deadline:
            return members
        time.sleep(0.5)


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
