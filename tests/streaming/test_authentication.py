"""Authentication: the commands reach a broker that requires SCRAM-SHA-512 (over SASL_PLAINTEXT
and SASL_SSL), with credentials from the environment or the config file, and never show them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from pyspark.sql import SparkSession

from infra.tracking import TrackingStore
from tests.conftest import PROJECT_ROOT, KafkaCredentials
from tests.streaming.conftest import Registry, all_offsets_once, event, training_frame
from tests.support import free_port, wait_until


def _env(store: TrackingStore, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STREAMING_")}
    return {
        **clean,
        "MLFLOW_TRACKING_URI": store.tracking_uri,
        "PYSPARK_PYTHON": sys.executable,
        **extra,
    }


def _kafka_env(options: dict[str, str]) -> dict[str, str]:
    """``STREAMING_KAFKA_*`` variables for ``kafka.*`` options."""
    return {
        "STREAMING_KAFKA_" + key.removeprefix("kafka.").upper().replace(".", "_"): value
        for key, value in options.items()
    }


def _streaming(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streaming", *args],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _files_holding(text: str, *roots: Path) -> list[str]:
    """Files under ``roots`` whose bytes contain ``text``."""
    needle = text.encode()
    found = []
    for root in roots:
        paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        found += [str(p) for p in paths if needle in p.read_bytes()]
    return found


def test_the_commands_connect_with_credentials_and_never_show_them(
    spark: SparkSession,
    registry: Registry,
    base_model,  # type: ignore[no-untyped-def]
    tracking_store: TrackingStore,
    kafka_credentials: KafkaCredentials,
    topic: str,
    tmp_path: Path,
) -> None:
    creds = kafka_credentials
    registry.register_spark(base_model, training_frame(spark))
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(event(i)) + "\n" for i in range(30)))

    # produce: SCRAM over SASL_PLAINTEXT, credentials from the environment.
    sasl_env = _env(tracking_store, **_kafka_env(creds.options("SASL_PLAINTEXT")))
    sent = _streaming(
        "produce", "--bootstrap-servers", creds.sasl_bootstrap, "--topic", topic,
        "--input", str(events), "--key-field", "event_id", env=sasl_env,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith("sent 30 events")

    # run: SCRAM over SASL_SSL, credentials from the config file.
    config = tmp_path / "service.toml"
    config.write_text(
        "[kafka-options]\n"
        + "".join(f'"{k}" = {json.dumps(v)}\n' for k, v in creds.options("SASL_SSL").items())
    )
    ui_port = free_port()
    checkpoint = tmp_path / "checkpoint"
    run_env = _env(tracking_store, STREAMING_CONFIG=str(config))
    log_file = tmp_path / "service.log"
    with log_file.open("wb") as log:
        service = subprocess.Popen(
            [sys.executable, "-m", "streaming", "run",
             "--bootstrap-servers", creds.ssl_bootstrap, "--topic", topic,
             "--model-uri", f"models:/{registry.name}@champion",
             "--predictions-table", str(tmp_path / "predictions"),
             "--quarantine-table", str(tmp_path / "quarantine"),
             "--checkpoint", str(checkpoint), "--query-name", "secured", "--trigger", "500ms",
             "--master", "local[2]", "--conf", f"spark.ui.port={ui_port}"],
            env=run_env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_until(
            lambda: service.poll() is None and (checkpoint / "commits" / "0").exists(),
            "the first committed batch",
            timeout_s=180,
        )
        # The Spark UI's environment page, through its REST API.
        ui = f"http://127.0.0.1:{ui_port}/api/v1/applications"
        with urllib.request.urlopen(ui, timeout=10) as response:
            app_id = json.load(response)[0]["id"]
        with urllib.request.urlopen(f"{ui}/{app_id}/environment", timeout=10) as response:
            environment = response.read().decode()
        assert "spark.app.name" in environment  # the page was read
        assert creds.password not in environment

        # status: SASL_SSL, credentials from the environment.
        status = _streaming(
            "status", "--bootstrap-servers", creds.ssl_bootstrap, "--checkpoint", str(checkpoint),
            "--predictions-table", str(tmp_path / "predictions"), "--query-name", "secured",
            env=_env(tracking_store, **_kafka_env(creds.options("SASL_SSL"))),
        )  # fmt: skip
        assert status.returncode == 0, status.stderr
        rows = [line.split("\t") for line in status.stdout.splitlines() if line.startswith(topic)]
        assert sum(int(row[3]) for row in rows) == 30  # end offsets, read over SASL_SSL
        assert creds.password not in status.stdout + status.stderr
    finally:
        service.send_signal(signal.SIGTERM)
        assert service.wait(120) == 0, log_file.read_text(errors="replace")

    all_offsets_once(spark, str(tmp_path / "predictions"), str(tmp_path / "quarantine"), 30)
    # Not in the logs (the service's and Spark's), the checkpoint, the tables or MLflow's store.
    leaks = _files_holding(
        creds.password,
        log_file,
        checkpoint,
        tmp_path / "predictions",
        tmp_path / "quarantine",
        tracking_store.local_dir,
        PROJECT_ROOT / ".local" / "logs",
    )
    assert leaks == []


def test_wrong_credentials_stop_at_start_with_one_line_and_exit_code_2(
    tracking_store: TrackingStore, kafka_credentials: KafkaCredentials, topic: str, tmp_path: Path
) -> None:
    wrong = "not-the-password"
    options = kafka_credentials.options("SASL_PLAINTEXT", password=wrong)
    result = _streaming(
        "run", "--bootstrap-servers", kafka_credentials.sasl_bootstrap, "--topic", topic,
        "--model-uri", "models:/any@champion",
        "--predictions-table", str(tmp_path / "p"), "--quarantine-table", str(tmp_path / "q"),
        "--checkpoint", str(tmp_path / "c"), "--master", "local[1]",
        "--conf", "spark.ui.enabled=false",
        env=_env(tracking_store, **_kafka_env(options)),
    )  # fmt: skip

    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: Kafka at {kafka_credentials.sasl_bootstrap} did not answer")
    assert "Authentication failed" in line
    assert wrong not in result.stderr + result.stdout
