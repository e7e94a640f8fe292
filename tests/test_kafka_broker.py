"""scripts/kafka-broker: start waits until it answers, stop leaves nothing, both idempotent."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from tests.conftest import BROKER_SCRIPT

# Slow (a broker, or a wheel built and installed): not part of the fast layer.
pytestmark = pytest.mark.integration


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = int(a.getsockname()[1])
        with socket.socket() as b:
            try:
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two adjacent free ports")


def _broker(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BROKER_SCRIPT), command], env=env, capture_output=True, text=True, timeout=180
    )


def _broker_processes(data_dir: Path) -> list[str]:
    found = subprocess.run(
        ["pgrep", "-f", f"kafka.Kafka {data_dir}"], capture_output=True, text=True
    )
    return found.stdout.split()


def test_start_and_stop_are_idempotent_and_leave_no_process(tmp_path: Path) -> None:
    port = _free_port_pair()
    env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_DATA_DIR": str(tmp_path / "kafka")}
    bootstrap = f"127.0.0.1:{port}"
    try:
        assert _broker("start", env).returncode == 0
        assert _broker("start", env).returncode == 0  # already running: nothing to do
        assert _broker("status", env).returncode == 0
        assert len(_broker_processes(tmp_path / "kafka")) == 1

        # Answers as soon as start returns: a round trip through a new topic.
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        producer.send("roundtrip", b"hello").get(timeout=60)
        producer.close()
        consumer = KafkaConsumer(
            "roundtrip",
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            consumer_timeout_ms=20000,
        )
        assert [m.value for m in consumer][:1] == [b"hello"]
        consumer.close()
    finally:
        first_stop = _broker("stop", env)
    assert first_stop.returncode == 0
    assert _broker("stop", env).returncode == 0
    assert _broker("status", env).returncode != 0
    assert _broker_processes(tmp_path / "kafka") == []
