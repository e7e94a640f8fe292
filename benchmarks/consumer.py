"""The hand-written alternative: kafka-python + the scikit-learn model + delta-rs, no Spark.

Run as its own process (``python -m benchmarks.consumer``) so that its memory is its own. It
reads the topic from the beginning in micro-batches, scores the events that parse, appends the
predictions with ``deltalake.write_deltalake`` and commits the offsets after each write. It
prints ``ready`` once it owns the partitions and, at the end, one JSON line with its figures.
Values that are not JSON objects are skipped and numbers of the wrong type become missing: it
keeps no quarantine and gives no exactly-once guarantee.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import mlflow
import pandas as pd
import pyarrow as pa
from deltalake import write_deltalake
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from models.listings import CATEGORICAL_COLUMNS, FEATURE_COLUMNS

__all__ = ["ConsumerRun", "consume", "main"]

READY = "ready"


@dataclass(frozen=True)
class ConsumerRun:
    """What the consumer did: epoch seconds of its start and end, writes, records read."""

    started_s: float
    finished_s: float
    batches: int
    records: int


def _features(events: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(events, columns=list(FEATURE_COLUMNS))
    numeric = [c for c in FEATURE_COLUMNS if c not in CATEGORICAL_COLUMNS]
    frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce")
    return frame


def _parse(records: list[ConsumerRecord]) -> tuple[list[ConsumerRecord], list[dict[str, Any]]]:
    """The records whose value is a JSON object, and those objects."""
    kept, events = [], []
    for record in records:
        try:
            event = json.loads(record.value)
        except (TypeError, ValueError):
            continue
        if isinstance(event, dict):
            kept.append(record)
            events.append(event)
    return kept, events


def _predictions(model: Any, records: list[ConsumerRecord]) -> pa.Table:
    kept, events = _parse(records)
    scores = model.predict(_features(events)) if events else []
    return pa.table(
        {
            "event_id": pa.array([e.get("event_id") for e in events], pa.string()),
            "key": pa.array([r.key.decode() if r.key else None for r in kept], pa.string()),
            "prediction": pa.array(scores, pa.float64()),
            "topic": pa.array([r.topic for r in kept], pa.string()),
            "partition": pa.array([r.partition for r in kept], pa.int32()),
            "offset": pa.array([r.offset for r in kept], pa.int64()),
            "timestamp": pa.array([r.timestamp for r in kept], pa.timestamp("ms", tz="UTC")),
        }
    )


def consume(
    bootstrap: str,
    topic: str,
    model_uri: str,
    table: str,
    expect: int,
    batch_records: int = 5000,
    poll_ms: int = 200,
) -> ConsumerRun:
    """Read ``topic`` from the beginning until ``expect`` records are written or skipped."""
    model = mlflow.pyfunc.load_model(model_uri)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"benchmark-consumer-{topic}",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    print(READY, flush=True)
    started, batches, records = time.time(), 0, 0
    try:
        while records < expect:
            polled = consumer.poll(timeout_ms=poll_ms, max_records=batch_records)
            batch = [record for part in polled.values() for record in part]
            if not batch:
                continue
            write_deltalake(table, _predictions(model, batch), mode="append")
            consumer.commit()
            batches, records = batches + 1, records + len(batch)
    finally:
        consumer.close()
    return ConsumerRun(started, time.time(), batches, records)


def main(argv: Sequence[str] | None = None) -> int:
    """Drain a topic with the hand-written consumer; print its figures as one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.consumer", description=__doc__)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--model-uri", required=True)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--table", required=True, help="Delta table of predictions")
    parser.add_argument("--expect", type=int, required=True, help="records to read, then stop")
    parser.add_argument("--batch-records", type=int, default=5000)
    args = parser.parse_args(argv)
    mlflow.set_tracking_uri(args.tracking_uri)
    mlflow.set_registry_uri(args.tracking_uri)
    run = consume(
        args.bootstrap_servers,
        args.topic,
        args.model_uri,
        args.table,
        args.expect,
        args.batch_records,
    )
    print(json.dumps(asdict(run)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
