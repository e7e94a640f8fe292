"""Helpers every kind of test shares: waiting for a condition, topics, producing and reading
records."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

# The benchmarks read with it too; the tests import it from here.
from benchmarks.duckdb_delta import duckdb_with_delta as duckdb_with_delta

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], what: str, timeout_s: float = 180, interval_s: float = 0.5
) -> T:
    """Poll ``condition`` until it returns something truthy, and return that.

    Raises:
        AssertionError: naming ``what`` when ``timeout_s`` passed first.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


def create_topic(bootstrap: str, name: str, partitions: int = 2) -> str:
    """Create topic ``name`` on the broker; returns the name."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    try:
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()
    return name


def send(bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]) -> None:
    """Produce ``(key, value)`` records with ``acks=all`` and wait for every acknowledgement."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for key, value in records:
            producer.send(topic, key=key, value=value)
        producer.flush()
    finally:
        producer.close()


def read_topic(
    bootstrap: str, topic: str, timeout_s: float = 60
) -> list[tuple[bytes | None, bytes | None]]:
    """Every ``(key, value)`` record ``topic`` holds now, partition by partition in offset order."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        records: dict[TopicPartition, list[tuple[bytes | None, bytes | None]]] = {
            tp: [] for tp in partitions
        }
        deadline = time.monotonic() + timeout_s
        while any(len(records[tp]) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s:.0f}s reading {topic}")
            for tp, batch in consumer.poll(timeout_ms=500).items():
                records[tp] += [(r.key, r.value) for r in batch]
        return [record for tp in sorted(partitions) for record in records[tp]]
    finally:
        consumer.close()


def topic_exists(bootstrap: str, name: str) -> bool:
    """Whether the broker knows topic ``name`` (asked without creating it)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    try:
        return name in admin.list_topics()
    finally:
        admin.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


FAULT_REPORT: list[dict[str, object]] = []


def report_fault(
    scenario: str,
    verdict: Mapping[str, object],
    kills: int = 0,
    restarts: int = 0,
    first_commit_s: float | None = None,
    broker_restarts: int = 0,
) -> None:
    """Record a fault scenario's verdict for the report the suite prints at its end.

    ``restarts`` counts the service's, ``broker_restarts`` the broker's. ``first_commit_s``: the
    longest time from a restart's process start to its first committed batch, when measured.
    """
    FAULT_REPORT.append(
        {
            "scenario": scenario,
            "events": verdict["records"],
            "kills": kills,
            "restarts": restarts,
            "broker restarts": broker_restarts,
            "missing": verdict["missing"],
            "doubled": verdict["doubled"],
            "different": verdict.get("different", 0),
            "first commit after restart (s)": "-"
            if first_commit_s is None
            else f"{first_commit_s:.1f}",
            "result": "ok" if verdict["ok"] else "FAILED",
        }
    )


def fault_report_lines() -> list[str]:
    """The fault scenarios run in this session, one row each."""
    columns = (
        "scenario",
        "events",
        "kills",
        "restarts",
        "broker restarts",
        "missing",
        "doubled",
        "different",
        "first commit after restart (s)",
        "result",
    )
    rows = [[str(entry[c]) for c in columns] for entry in FAULT_REPORT]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        for row in (list(columns), *rows)
    ]
