"""Shared fixtures: one SparkSession, one real Kafka broker, one MLflow store per test session."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long",
        action="store_true",
        help="run the fault campaign in its long mode (1M events, 20 kills, 2 broker restarts)",
    )


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


# The broker's SCRAM user for this session, with a password made up for it (so that finding it
# anywhere it should not be is a leak, not a coincidence).
SCRAM_USER = "inference"
SCRAM_PASSWORD = f"pw-{secrets.token_hex(12)}"


@dataclass(frozen=True)
class KafkaCredentials:
    """The test broker's secured listeners and a SCRAM-SHA-512 user it knows."""

    sasl_bootstrap: str  # SASL_PLAINTEXT
    ssl_bootstrap: str  # SASL_SSL
    ca_file: Path  # the broker's certificate, which clients trust
    user: str = SCRAM_USER
    password: str = SCRAM_PASSWORD

    def options(self, protocol: str, password: str | None = None) -> dict[str, str]:
        """Kafka client options (``kafka.*``) for ``protocol`` as this user."""
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{self.user}" password="{password or self.password}";'
        )
        options = {
            "kafka.security.protocol": protocol,
            "kafka.sasl.mechanism": "SCRAM-SHA-512",
            "kafka.sasl.jaas.config": jaas,
        }
        if protocol == "SASL_SSL":
            options["kafka.ssl.truststore.type"] = "PEM"
            options["kafka.ssl.truststore.location"] = str(self.ca_file)
        return options


@pytest.fixture(scope="session")
def broker_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    data_dir = tmp_path_factory.mktemp("kafka")
    port = int(TEST_BROKER_PORT)
    return {
        **os.environ,
        "KAFKA_PORT": str(port),
        "KAFKA_SASL_PORT": str(port + 2),  # port + 1 is the controller's
        "KAFKA_SSL_PORT": str(port + 3),
        "KAFKA_SCRAM_USERS": f"{SCRAM_USER}:{SCRAM_PASSWORD}",
        "KAFKA_DATA_DIR": str(data_dir),
    }


@pytest.fixture(scope="session")
def kafka_bootstrap(broker_env: dict[str, str]) -> Iterator[str]:
    """A real Kafka broker (KRaft) started by the project's script; stopped after the session.

    Besides PLAINTEXT (this address) it listens with SCRAM-SHA-512 over SASL_PLAINTEXT and
    SASL_SSL (see ``kafka_credentials``).
    """
    _broker("start", broker_env)
    try:
        yield f"127.0.0.1:{TEST_BROKER_PORT}"
    finally:
        _broker("stop", broker_env)


@pytest.fixture(scope="session")
def kafka_credentials(kafka_bootstrap: str, broker_env: dict[str, str]) -> KafkaCredentials:
    return KafkaCredentials(
        sasl_bootstrap=f"127.0.0.1:{broker_env['KAFKA_SASL_PORT']}",
        ssl_bootstrap=f"127.0.0.1:{broker_env['KAFKA_SSL_PORT']}",
        ca_file=Path(broker_env["KAFKA_DATA_DIR"]) / "tls" / "ca.pem",
    )


@pytest.fixture
def restart_broker(kafka_bootstrap: str, broker_env: dict[str, str]) -> Callable[[float], None]:
    """Stop the session's broker (cleanly), wait ``down_s`` seconds, start it again."""

    def restart(down_s: float) -> None:
        _broker("stop", broker_env)
        time.sleep(down_s)
        _broker("start", broker_env)

    return restart


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
