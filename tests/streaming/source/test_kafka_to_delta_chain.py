"""The real chain underneath the service: broker -> Spark's Kafka source -> Delta -> readers."""

from __future__ import annotations

import json
from pathlib import Path

import deltalake
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from streaming.source.kafka import kafka_source_options, read_kafka_stream
from tests.support import send


def _produce(bootstrap: str, topic: str, events: list[dict[str, object]]) -> None:
    send(bootstrap, topic, ((str(e["id"]).encode(), json.dumps(e).encode()) for e in events))


def test_events_reach_a_delta_table_once_each(
    spark: SparkSession, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    events = [{"id": i, "price": 10.5 * i, "room_type": f"type-{i % 3}"} for i in range(50)]
    _produce(kafka_bootstrap, topic, events)
    table, checkpoint = tmp_path / "events", tmp_path / "checkpoint"

    options = kafka_source_options(kafka_bootstrap, topics=(topic,))
    stream = read_kafka_stream(spark, options).select(
        F.col("key").cast("string").alias("key"),
        F.col("value").cast("string").alias("value"),
        "partition",
        "offset",
    )
    query = (
        stream.writeStream.format("delta")
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .start(str(table))
    )
    query.awaitTermination(180)
    assert query.exception() is None

    rows = spark.read.format("delta").load(str(table)).collect()
    assert len(rows) == len(events)
    assert len({(r.partition, r.offset) for r in rows}) == len(events)
    assert sorted(json.loads(r.value)["id"] for r in rows) == list(range(50))
    assert all(r.key == str(json.loads(r.value)["id"]) for r in rows)

    by_delta_rs = deltalake.DeltaTable(str(table)).to_pandas()
    assert sorted(by_delta_rs["key"].astype(int)) == list(range(50))
    assert sorted(by_delta_rs["value"].map(lambda v: json.loads(v)["price"])) == sorted(
        e["price"] for e in events
    )


def test_a_rerun_from_the_checkpoint_adds_only_new_events(
    spark: SparkSession, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    table, checkpoint = tmp_path / "events", tmp_path / "checkpoint"
    options = kafka_source_options(kafka_bootstrap, topics=(topic,))

    def drain() -> None:
        query = (
            read_kafka_stream(spark, options)
            .select(F.col("value").cast("string").alias("value"), "partition", "offset")
            .writeStream.format("delta")
            .option("checkpointLocation", str(checkpoint))
            .trigger(availableNow=True)
            .start(str(table))
        )
        query.awaitTermination(180)
        assert query.exception() is None

    _produce(kafka_bootstrap, topic, [{"id": i} for i in range(10)])
    drain()
    _produce(kafka_bootstrap, topic, [{"id": i} for i in range(10, 25)])
    drain()

    ids = [json.loads(r.value)["id"] for r in spark.read.format("delta").load(str(table)).collect()]
    assert sorted(ids) == list(range(25))
