"""The project's own Kafka clients (``status``, ``produce``) with the query's Kafka settings.

Spark's Kafka source takes Java client properties (``kafka.security.protocol``,
``kafka.sasl.jaas.config`` ...); kafka-python takes the same settings under other names.
Nothing here imports Spark.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from streaming.errors import ConfigurationError

# What to check when a broker does not answer with the given settings.
CONNECTION_HINT = (
    "check --bootstrap-servers and the kafka.security.protocol / kafka.sasl.* / kafka.ssl.* options"
)
# How long a client of ours waits for a first answer: a broker that accepts connections but does
# not speak the expected protocol (or rejects the credentials) fails in seconds, not kafka-python's
# default 30.
_BOOTSTRAP_TIMEOUT_MS = 10_000
_UNKNOWN_TOPIC = 3  # Kafka's UNKNOWN_TOPIC_OR_PARTITION
_TOPIC_ALREADY_EXISTS = 36

if TYPE_CHECKING:
    from kafka import KafkaConsumer, KafkaProducer

_Client = TypeVar("_Client")

__all__ = [
    "CONNECTION_HINT",
    "TopicSpec",
    "check_broker_reachable",
    "earliest_offsets",
    "end_offsets",
    "event_producer",
    "kafka_python_config",
    "offsets_since",
    "partition_counts",
    "prepare_topic",
]

_JAAS_OPTION = re.compile(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"')
_DIRECT = {
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "ssl.check.hostname": "ssl_check_hostname",
    "client.id": "client_id",
    "request.timeout.ms": "request_timeout_ms",
}
# PEM files: the Java client names them ssl.truststore.location when the type is PEM.
_PEM_FILES = {"ssl.truststore.location": "ssl_cafile", "ssl.keystore.location": "ssl_certfile"}


def kafka_python_config(client_options: Mapping[str, str]) -> dict[str, Any]:
    """kafka-python keyword arguments for Java client options given without ``kafka.``.

    Understood: security protocol, SASL mechanism, the username and password of a PLAIN or
    SCRAM JAAS config, PEM trust and key stores, client id, request timeout. Other options are
    for Spark's client only and are left out.

    Raises:
        ConfigurationError: a JAAS config without a username and password.
    """
    config: dict[str, Any] = {}
    for key, value in client_options.items():
        if key in _DIRECT:
            config[_DIRECT[key]] = int(value) if key.endswith(".ms") else value
        elif key in _PEM_FILES:
            config[_PEM_FILES[key]] = value
        elif key == "sasl.jaas.config":
            fields = dict(_JAAS_OPTION.findall(value))
            if "username" not in fields or "password" not in fields:
                raise ConfigurationError(
                    'kafka.sasl.jaas.config must give username="..." and password="..."'
                )
            config["sasl_plain_username"] = fields["username"]
            config["sasl_plain_password"] = fields["password"]
    if "ssl_check_hostname" in config:
        config["ssl_check_hostname"] = str(config["ssl_check_hostname"]).lower() == "true"
    return config


def _connect(
    make: Callable[..., _Client],
    bootstrap_servers: str,
    client_options: Mapping[str, str],
    **defaults: Any,
) -> _Client:
    """A kafka-python client (``make``: consumer, admin or producer) with ``defaults``, then the
    user's options.

    Raises:
        ConfigurationError: the broker did not answer with these settings (one line).
    """
    from kafka.errors import KafkaError

    config = {
        "bootstrap_timeout_ms": _BOOTSTRAP_TIMEOUT_MS,
        **defaults,
        **kafka_python_config(client_options),
    }
    try:
        return make(bootstrap_servers=bootstrap_servers, **config)
    except KafkaError as e:
        raise _no_answer(bootstrap_servers, e) from None


def _no_answer(bootstrap_servers: str, error: Exception) -> ConfigurationError:
    return ConfigurationError(
        f"Kafka at {bootstrap_servers} did not answer ({error}): {CONNECTION_HINT}"
    )


@contextmanager
def _offsets_consumer(
    bootstrap_servers: str, client_options: Mapping[str, str]
) -> Iterator[KafkaConsumer]:
    """A kafka-python consumer that only looks up offsets: no group, nothing committed.

    Raises:
        ConfigurationError: the broker did not answer with these settings (one line).
    """
    from kafka import KafkaConsumer

    consumer = _connect(
        KafkaConsumer,
        bootstrap_servers,
        client_options,
        request_timeout_ms=15000,
        enable_auto_commit=False,
    )
    with closing(consumer):
        yield consumer


def event_producer(bootstrap_servers: str, client_options: Mapping[str, str]) -> KafkaProducer:
    """A kafka-python producer for events: every record acknowledged by all in-sync replicas.

    It never creates a topic by sending to it (check with :func:`prepare_topic` first).

    Raises:
        ConfigurationError: the broker did not answer with these settings (one line).
    """
    from kafka import KafkaProducer

    return _connect(
        KafkaProducer,
        bootstrap_servers,
        client_options,
        acks="all",
        linger_ms=20,
        retries=5,
        # Larger, compressed batches: about 2.5 times the events per second of the defaults
        # (16 KiB, uncompressed) on one machine; every broker and Spark reads gzip.
        batch_size=256 * 1024,
        compression_type="gzip",
        allow_auto_create_topics=False,
    )


@dataclass(frozen=True)
class TopicSpec:
    """How a missing topic is created."""

    partitions: int = 1
    replication_factor: int = 1


def prepare_topic(
    bootstrap_servers: str,
    client_options: Mapping[str, str],
    topic: str,
    create: TopicSpec | None = None,
    missing_hint: str = "create it, or give --create-topic (with --partitions and "
    "--replication-factor)",
) -> bool:
    """Make sure ``topic`` exists before anything is sent to it.

    The broker's metadata is asked without auto-creation, so a broker that creates topics on
    first use (``auto.create.topics.enable``) does not make a typo a new topic.

    Args:
        create: How to create the topic when it is missing; ``None`` to refuse a missing topic.
        missing_hint: What the error of a missing topic tells the user to do.

    Returns:
        Whether the topic was created (an existing one, or one created meanwhile, is fine).

    Raises:
        ConfigurationError: the broker did not answer, the topic is missing and ``create`` is
            ``None``, or the broker refused to describe or create it (one line each).
    """
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError, for_code

    admin = _connect(KafkaAdminClient, bootstrap_servers, client_options, request_timeout_ms=15000)
    with closing(admin):
        try:
            (described,) = admin.describe_topics([topic])
            code = described["error_code"]
            if code == 0:
                return False
            if code != _UNKNOWN_TOPIC:
                raise ConfigurationError(
                    f"Kafka at {bootstrap_servers} refused to describe topic {topic}: "
                    f"{for_code(code).__name__}"
                )
            if create is None:
                raise ConfigurationError(
                    f"topic {topic} does not exist on {bootstrap_servers}: {missing_hint}"
                )
            result = admin.create_topics(
                {
                    topic: {
                        "num_partitions": create.partitions,
                        "replication_factor": create.replication_factor,
                    }
                },
                raise_errors=False,
            )
            (created,) = result["topics"]
            code = created["error_code"]
            if code == _TOPIC_ALREADY_EXISTS:
                return False
            if code != 0:
                reason = created.get("error_message") or for_code(code).__name__
                raise ConfigurationError(
                    f"Kafka at {bootstrap_servers} did not create topic {topic}: {reason}"
                )
            admin.wait_for_topics([topic])
        except KafkaError as e:
            raise _no_answer(bootstrap_servers, e) from None
    return True


def partition_counts(
    bootstrap_servers: str, client_options: Mapping[str, str], topics: Sequence[str]
) -> dict[str, int | None]:
    """How many partitions each topic has (``None``: the topic does not exist).

    The broker is asked without auto-creation, so asking never creates a topic.

    Raises:
        ConfigurationError: the broker did not answer, or refused to describe a topic.
    """
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError, for_code

    admin = _connect(KafkaAdminClient, bootstrap_servers, client_options, request_timeout_ms=15000)
    counts: dict[str, int | None] = {}
    with closing(admin):
        try:
            for described in admin.describe_topics(list(topics)):
                code, name = described["error_code"], described["name"]
                if code == _UNKNOWN_TOPIC:
                    counts[name] = None
                elif code != 0:
                    raise ConfigurationError(
                        f"Kafka at {bootstrap_servers} refused to describe topic {name}: "
                        f"{for_code(code).__name__}"
                    )
                else:
                    counts[name] = len(described["partitions"])
        except KafkaError as e:
            raise _no_answer(bootstrap_servers, e) from None
    return counts


def end_offsets(
    bootstrap_servers: str,
    client_options: Mapping[str, str],
    partitions: Sequence[tuple[str, int]],
) -> dict[tuple[str, int], int]:
    """The offset the next record of each ``(topic, partition)`` will get.

    Raises:
        ConfigurationError: the broker did not answer with these settings.
    """
    from kafka import TopicPartition

    with _offsets_consumer(bootstrap_servers, client_options) as consumer:
        found = consumer.end_offsets([TopicPartition(t, p) for t, p in partitions])
    return {(tp.topic, tp.partition): int(o) for tp, o in found.items()}


def offsets_since(
    bootstrap_servers: str,
    client_options: Mapping[str, str],
    partitions: Sequence[tuple[str, int]],
    timestamp_ms: int,
) -> dict[tuple[str, int], int | None]:
    """The first offset of each ``(topic, partition)`` whose record is stamped at or after
    ``timestamp_ms`` (``None``: every record the partition holds is older).

    Raises:
        ConfigurationError: the broker did not answer with these settings.
    """
    from kafka import TopicPartition

    with _offsets_consumer(bootstrap_servers, client_options) as consumer:
        found = consumer.offsets_for_times(
            {TopicPartition(t, p): timestamp_ms for t, p in partitions}
        )
    return {
        (tp.topic, tp.partition): None if hit is None else int(hit.offset)
        for tp, hit in found.items()
    }


def earliest_offsets(
    bootstrap_servers: str, client_options: Mapping[str, str], topic: str
) -> dict[int, int]:
    """The earliest offset the broker still holds, per partition of ``topic``.

    Raises:
        ConfigurationError: the broker did not answer with these settings.
    """
    from kafka import TopicPartition

    with _offsets_consumer(bootstrap_servers, client_options) as consumer:
        ids = consumer.partitions_for_topic(topic) or set()
        found = consumer.beginning_offsets([TopicPartition(topic, p) for p in ids])
    return {tp.partition: int(o) for tp, o in found.items()}


def check_broker_reachable(bootstrap_servers: str, timeout_s: float = 10.0) -> None:
    """Fail at start when no bootstrap server accepts a TCP connection.

    Raises:
        ConfigurationError: none of the servers answered.
    """
    failures = []
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
                return
        except (OSError, ValueError) as e:
            failures.append(f"{server.strip()} ({e})")
    raise ConfigurationError(
        f"no Kafka broker reachable at {', '.join(failures)}: check --bootstrap-servers"
    )
