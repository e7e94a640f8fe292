"""Spark's Kafka source, with its options built in one place."""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import DataFrame, SparkSession

from streaming.settings import Secret

__all__ = ["KAFKA_COLUMNS", "kafka_source_options", "read_kafka_batch", "read_kafka_stream"]

KAFKA_COLUMNS = ("key", "value", "topic", "partition", "offset", "timestamp")


def kafka_source_options(
    bootstrap_servers: str,
    topics: tuple[str, ...] = (),
    topic_pattern: str | None = None,
    starting_offsets: str = "earliest",
    max_offsets_per_trigger: int | None = None,
    extra: Mapping[str, str | Secret] | None = None,
) -> dict[str, str]:
    """Options for ``spark.readStream.format("kafka")``.

    ``extra`` keys are passed through as given (``kafka.security.protocol``,
    ``kafka.sasl.jaas.config``, ``failOnDataLoss``...); secrets are unwrapped only here.
    """
    options: dict[str, str] = {
        "kafka.bootstrap.servers": bootstrap_servers,
        "startingOffsets": starting_offsets,
        # A topic deleted or truncated under the query is an infrastructure failure: stop loudly.
        "failOnDataLoss": "true",
        "includeHeaders": "false",
    }
    if topic_pattern:
        options["subscribePattern"] = topic_pattern
    else:
        options["subscribe"] = ",".join(topics)
    if max_offsets_per_trigger is not None:
        options["maxOffsetsPerTrigger"] = str(max_offsets_per_trigger)
    for key, value in (extra or {}).items():
        options[key] = value.value if isinstance(value, Secret) else value
    return options


def read_kafka_stream(spark: SparkSession, options: Mapping[str, str]) -> DataFrame:
    """A streaming DataFrame of Kafka records (key, value, topic, partition, offset, timestamp)."""
    return spark.readStream.format("kafka").options(**options).load().select(*KAFKA_COLUMNS)


def read_kafka_batch(spark: SparkSession, options: Mapping[str, str]) -> DataFrame:
    """A batch read of the same records, from ``startingOffsets`` to the latest offsets."""
    batch_options = {k: v for k, v in options.items() if k != "maxOffsetsPerTrigger"}
    return spark.read.format("kafka").options(**batch_options).load().select(*KAFKA_COLUMNS)
