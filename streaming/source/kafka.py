"""Spark's Kafka source, with its options built in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr
from pyspark.sql import DataFrame, SparkSession

from infra.errors import first_line
from streaming.errors import ConfigurationError
from streaming.source.client import CONNECTION_HINT

__all__ = [
    "KAFKA_COLUMNS",
    "check_kafka_access",
    "kafka_sink_options",
    "kafka_source_options",
    "read_kafka_stream",
    "read_kafka_topic",
]

KAFKA_COLUMNS = ("key", "value", "topic", "partition", "offset", "timestamp")


def kafka_source_options(
    bootstrap_servers: str,
    topics: tuple[str, ...] = (),
    topic_pattern: str | None = None,
    starting_offsets: str = "earliest",
    max_offsets_per_trigger: int | None = None,
    extra: Mapping[str, str | SecretStr] | None = None,
    fail_on_data_loss: bool = True,
    include_headers: bool = False,
) -> dict[str, str]:
    """Options for ``spark.readStream.format("kafka")``.

    ``fail_on_data_loss``: records deleted (by retention) before they were read, or a topic
    deleted under the query, stop the query (``True``) or are skipped (``False``).

    ``include_headers``: the records carry their Kafka ``headers`` column.

    ``extra`` keys are passed through as given (``kafka.security.protocol``,
    ``kafka.sasl.jaas.config``, ``failOnDataLoss``...); secrets are unwrapped only here.
    """
    options: dict[str, str] = {
        "kafka.bootstrap.servers": bootstrap_servers,
        "startingOffsets": starting_offsets,
        "failOnDataLoss": str(fail_on_data_loss).lower(),
        "includeHeaders": str(include_headers).lower(),
    }
    if topic_pattern:
        options["subscribePattern"] = topic_pattern
    else:
        options["subscribe"] = ",".join(topics)
    if max_offsets_per_trigger is not None:
        options["maxOffsetsPerTrigger"] = str(max_offsets_per_trigger)
    for key, value in (extra or {}).items():
        options[key] = value.get_secret_value() if isinstance(value, SecretStr) else value
    return options


def kafka_sink_options(
    bootstrap_servers: str, extra: Mapping[str, str | SecretStr] | None = None
) -> dict[str, str]:
    """Options for ``writeStream.format("kafka")``: the servers and the ``kafka.*`` client
    options (credentials included, unwrapped only here); each record names its own topic."""
    options = {"kafka.bootstrap.servers": bootstrap_servers}
    for key, value in (extra or {}).items():
        if key.startswith("kafka."):
            options[key] = value.get_secret_value() if isinstance(value, SecretStr) else value
    return options


def read_kafka_stream(
    spark: SparkSession, options: Mapping[str, str], with_headers: bool = False
) -> DataFrame:
    """A streaming DataFrame of Kafka records (key, value, topic, partition, offset, timestamp,
    and ``headers`` when asked for: the options must then include them)."""
    columns = (*KAFKA_COLUMNS, "headers") if with_headers else KAFKA_COLUMNS
    return spark.readStream.format("kafka").options(**options).load().select(*columns)


def read_kafka_topic(
    spark: SparkSession,
    bootstrap_servers: str,
    topic: str,
    extra: Mapping[str, str | SecretStr] | None = None,
) -> DataFrame:
    """Every record a topic holds now, as a batch DataFrame (the stream's columns)."""
    options = kafka_source_options(
        bootstrap_servers, topics=(topic,), starting_offsets="earliest", extra=extra
    )
    options["endingOffsets"] = "latest"
    return spark.read.format("kafka").options(**options).load().select(*KAFKA_COLUMNS)


def check_kafka_access(
    spark: SparkSession, options: Mapping[str, str], timeout_s: int = 20
) -> None:
    """Ask the cluster for its id with the query's own Kafka client and ``kafka.*`` settings.

    Wrong credentials, a protocol the listener does not speak or an untrusted certificate fail
    here, at start, instead of inside the first batch.

    Raises:
        ConfigurationError: the cluster did not answer with these settings.
    """
    from py4j.protocol import Py4JJavaError

    jvm = spark.sparkContext._jvm
    assert jvm is not None
    properties = jvm.java.util.Properties()
    for key, value in options.items():
        if key.startswith("kafka."):
            properties.setProperty(key.removeprefix("kafka."), value)
    for key in ("request.timeout.ms", "default.api.timeout.ms"):
        if not properties.containsKey(key):
            properties.setProperty(key, str(timeout_s * 1000))
    admin = jvm.org.apache.kafka.clients.admin.Admin.create(properties)
    try:
        seconds = jvm.java.util.concurrent.TimeUnit.SECONDS
        admin.describeCluster().clusterId().get(timeout_s + 5, seconds)
    except Py4JJavaError as e:
        raise ConfigurationError(
            f"Kafka at {options.get('kafka.bootstrap.servers')} did not answer with the given "
            f"settings ({_root_cause(e.java_exception)}): {CONNECTION_HINT}"
        ) from None
    finally:
        admin.close(jvm.java.time.Duration.ofSeconds(5))


def _root_cause(throwable: Any) -> str:
    while throwable.getCause() is not None and throwable.getCause() != throwable:
        throwable = throwable.getCause()
    message = throwable.getMessage()
    name = throwable.getClass().getSimpleName()
    return f"{name}: {first_line(message)}" if message else name
