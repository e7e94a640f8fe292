"""The ceiling arms' query: Kafka -> ``from_json`` -> [MLlib ``transform``] -> Delta, plain.

The drains and latency runs start it on the benchmark's session (``SparkQueryArm``); the start-up
part runs it as a process of its own (``python -m benchmarks.plainjob``), so that a plain Spark
job's first prediction is timed from process start as the service's is: the same session
settings, jars and class archive (``infra.spark``), the same trigger and batch cap.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.types import StructType

from infra.paths import ProjectHome
from infra.spark import command_session
from streaming.settings import DEFAULT_MAX_OFFSETS_PER_TRIGGER, Trigger, parse_trigger
from streaming.source.kafka import kafka_source_options, read_kafka_stream

__all__ = ["main", "start_plain_query"]

_COORDINATES = ("topic", "partition", "offset", "timestamp")


def _events(spark: SparkSession, bootstrap: str, topic: str, schema: StructType) -> DataFrame:
    options = kafka_source_options(
        bootstrap, topics=(topic,), max_offsets_per_trigger=DEFAULT_MAX_OFFSETS_PER_TRIGGER
    )
    records = read_kafka_stream(spark, options)
    value = F.from_json(F.col("value").cast("string"), schema)
    return records.select(
        value.alias("event"), F.col("key").cast("string").alias("key"), *_COORDINATES
    ).select("event.*", "key", *_COORDINATES)


def start_plain_query(
    spark: SparkSession,
    bootstrap: str,
    topic: str,
    schema: StructType,
    pipeline: PipelineModel | None,
    trigger: Trigger,
    folder: Path,
    name: str,
) -> StreamingQuery:
    """Start the plain query on ``topic``, writing ``folder/table`` (checkpoint beside it).

    It writes the parsed events, with their prediction when ``pipeline`` is given: scoring
    only adds work.
    """
    events = _events(spark, bootstrap, topic, schema)
    rows = events
    if pipeline is not None:
        rows = pipeline.transform(events).select(*events.columns, "prediction")
    return (
        rows.writeStream.format("delta")
        .queryName(name)
        .option("checkpointLocation", str(folder / "checkpoint"))
        .trigger(**trigger.as_kwargs())  # type: ignore[call-overload]
        .start(str(folder / "table"))
    )


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.plainjob",
        description="A plain Spark job (Kafka -> from_json [-> model] -> Delta) until SIGTERM.",
    )
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--schema", required=True, help="the events' JSON schema (Spark's JSON)")
    parser.add_argument("--model-uri", help="score with this MLlib model (none: parse only)")
    parser.add_argument("--tracking-uri", help="the MLflow store of --model-uri")
    parser.add_argument("--folder", type=Path, required=True, help="table and checkpoint")
    parser.add_argument("--trigger", type=parse_trigger, default=parse_trigger("1s"))
    parser.add_argument("--home", type=Path, required=True, help="the checkout (jars)")
    return parser.parse_args(argv)


def _mlflow_spark(tracking_uri: str) -> Any:
    """``mlflow.spark``, its registry the given store's (not one the environment names)."""
    import mlflow.spark

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return mlflow.spark


def main(argv: Sequence[str] | None = None) -> int:
    """Run the plain query until SIGTERM or SIGINT, then stop it between batches.

    A plain job does no more than it needs: the schema is given, and MLflow (seconds to import)
    is imported only to load the model, while the JVM starts, as the service imports it.
    """
    args = _arguments(argv)
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    with ThreadPoolExecutor(max_workers=1) as pool:
        mlflow_spark: Future[Any] | None = None
        if args.model_uri:
            mlflow_spark = pool.submit(_mlflow_spark, args.tracking_uri)
        with command_session("plainjob", ProjectHome.resolve(args.home).spark_jars) as spark:
            pipeline = None
            if mlflow_spark is not None:
                pipeline = mlflow_spark.result().load_model(args.model_uri)
            query = start_plain_query(
                spark,
                args.bootstrap_servers,
                args.topic,
                StructType.fromJson(json.loads(args.schema)),
                pipeline,
                args.trigger,
                args.folder,
                "plainjob",
            )
            while query.isActive and not stop.is_set():
                stop.wait(0.2)
            exception = query.exception()
            query.stop()
    if exception is not None:
        print(f"plainjob: the query failed: {exception}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
