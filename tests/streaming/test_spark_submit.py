"""``spark-submit.sh`` on a real Spark standalone cluster on loopback.

The Master and a Worker are started with pyspark's own ``spark-class``; the service is submitted
to them, its executors run in the Worker, and its predictions land in the Delta table.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyspark
import pytest
from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession

from infra.tracking import TrackingStore
from tests.conftest import PROJECT_ROOT
from tests.streaming.conftest import (
    Registry,
    all_offsets_once,
    mixed_events,
    produce,
    training_frame,
)
from tests.support import free_port, wait_until

SPARK_HOME = Path(pyspark.__file__).resolve().parent


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a daemon and everything it started (the Worker's executors included)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)


class StandaloneCluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = ""
        self.processes: list[subprocess.Popen[bytes]] = []
        self.env = {
            **os.environ,
            "SPARK_HOME": str(SPARK_HOME),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_PYTHON": sys.executable,
        }

    def _daemon(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [str(SPARK_HOME / "bin" / "spark-class"), *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def start(self) -> None:
        port = free_port()
        self.url = f"spark://127.0.0.1:{port}"
        self._daemon(
            "master",
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--webui-port",
            str(free_port()),
        )
        wait_until(lambda: "I have been elected leader" in self.log("master"), "the Master")
        self._daemon(
            "worker",
            "org.apache.spark.deploy.worker.Worker",
            self.url,
            "--host",
            "127.0.0.1",
            "--cores",
            "2",
            "--memory",
            "2g",
            "--work-dir",
            str(self.root / "work"),
            "--webui-port",
            str(free_port()),
        )
        wait_until(
            lambda: "Successfully registered with master" in self.log("worker"), "the Worker"
        )

    def stop(self) -> None:
        for process in reversed(self.processes):
            _stop(process)


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    cluster = StandaloneCluster(tmp_path_factory.mktemp("standalone"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def test_the_service_runs_on_a_standalone_cluster_through_spark_submit(
    spark: SparkSession,
    standalone_cluster: StandaloneCluster,
    registry: Registry,
    base_model: PipelineModel,
    tracking_store: TrackingStore,
    kafka_bootstrap: str,
    topic: str,
    tmp_path: Path,
) -> None:
    registry.register_spark(base_model, training_frame(spark))
    produced = 60
    produce(kafka_bootstrap, topic, mixed_events(produced))
    predictions, quarantine = tmp_path / "predictions", tmp_path / "quarantine"

    result = subprocess.run(
        [
            str(PROJECT_ROOT / "spark-submit.sh"),
            "--master",
            standalone_cluster.url,
            "--conf",
            "spark.ui.enabled=false",
            "--executor-memory",
            "1g",
            "run",
            "--bootstrap-servers",
            kafka_bootstrap,
            "--topic",
            topic,
            "--model-uri",
            f"models:/{registry.name}@champion",
            "--predictions-table",
            str(predictions),
            "--quarantine-table",
            str(quarantine),
            "--checkpoint",
            str(tmp_path / "checkpoint"),
            "--trigger",
            "available-now",
        ],
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_store.tracking_uri},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]

    # The work ran in the Worker's executors, not in a local driver.
    applications = list((standalone_cluster.root / "work").glob("app-*"))
    assert applications, standalone_cluster.log("worker")[-4000:]
    all_offsets_once(spark, str(predictions), str(quarantine), produced)
