"""Shared fixtures: one SparkSession, one real Kafka broker, one MLflow store per test session."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from infra.paths import ProjectHome
from infra.spark import build_spark_session, stop_spark
from infra.tracking import TrackingStore, configure_tracking
from tests.support import FAULT_REPORT, create_topic, fault_report_lines

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BROKER_SCRIPT = PROJECT_ROOT / "scripts" / "kafka-broker"
# The checkout's own cache of the pinned Spark jars (scripts/setup fills it).
SPARK_JARS = ProjectHome(PROJECT_ROOT).spark_jars
# A port of its own, so a demo broker on 9092 and the tests never meet.
TEST_BROKER_PORT = os.environ.get("TEST_KAFKA_PORT", "19092")

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    session = build_spark_session(
        "tests",
        SPARK_JARS,
        master="local[2]",
        extra_conf={
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.driver.memory": "2g",
            "spark.sql.streaming.minBatchesToRetain": "5",
        },
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    stop_spark(session)


# Fixtures that bring up a real service: a test using any of them is an integration test.
_REAL_SERVICES = {"kafka_bootstrap", "tracking_store"}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fault report: each scenario that ended with the verifier, with its counts."""
    if FAULT_REPORT:
        terminalreporter.section("fault scenarios (every one ends with the verifier)")
        for line in fault_report_lines():
            terminalreporter.write_line(line)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the broker or the MLflow store as ``integration``.

    ``scripts/test --fast`` runs the rest: pure logic and Spark on tiny in-memory frames.
    """
    for item in items:
        if _REAL_SERVICES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def _broker(command: str, env: dict[str, str]) -> None:
    subprocess.run([str(BROKER_SCRIPT), command], env=env, check=True)


@pytest.fixture(scope="session")
def broker_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    data_dir = tmp_path_factory.mktemp("kafka")
    return {**os.environ, "KAFKA_PORT": TEST_BROKER_PORT, "KAFKA_DATA_DIR": str(data_dir)}


@pytest.fixture(scope="session")
def kafka_bootstrap(broker_env: dict[str, str]) -> Iterator[str]:
    """A real Kafka broker (KRaft) started by the project's script; stopped after the session."""
    _broker("start", broker_env)
    try:
        yield f"127.0.0.1:{TEST_BROKER_PORT}"
    finally:
        _broker("stop", broker_env)


@pytest.fixture
def topic(kafka_bootstrap: str, request: pytest.FixtureRequest) -> str:
    """A fresh topic with two partitions for one test."""
    name = f"t-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}".replace("[", "-").replace("]", "")
    return create_topic(kafka_bootstrap, name)


@pytest.fixture(scope="session")
def tracking_store(tmp_path_factory: pytest.TempPathFactory) -> TrackingStore:
    """A real MLflow store (sqlite + local artifacts) for the whole test session."""
    store = TrackingStore(local_dir=Path(tmp_path_factory.mktemp("mlflow")))
    configure_tracking(store)
    return store
