"""The project's own Kafka clients (``status``, ``produce``) with the query's Kafka settings.

Spark's Kafka source takes Java client properties (``kafka.security.protocol``,
``kafka.sasl.jaas.config`` ...); kafka-python takes the same settings under other names.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from streaming.errors import ConfigurationError

# What to check when a broker does not answer with the given settings.
CONNECTION_HINT = (
    "check --bootstrap-servers and the kafka.security.protocol / kafka.sasl.* / kafka.ssl.* options"
)

if TYPE_CHECKING:
    from kafka import KafkaConsumer

__all__ = [
    "CONNECTION_HINT",
    "earliest_offsets",
    "end_offsets",
    "kafka_python_config",
    "offsets_since",
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


@contextmanager
def _offsets_consumer(
    bootstrap_servers: str, client_options: Mapping[str, str]
) -> Iterator[KafkaConsumer]:
    """A kafka-python consumer that only looks up offsets: no group, nothing committed.

    Raises:
        ConfigurationError: the broker did not answer with these settings (one line).
    """
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    config = {"request_timeout_ms": 15000, **kafka_python_config(client_options)}
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers, enable_auto_commit=False, **config
        )
    except KafkaError as e:
        raise ConfigurationError(
            f"Kafka at {bootstrap_servers} did not answer ({e}): {CONNECTION_HINT}"
        ) from None
    try:
        yield consumer
    finally:
        consumer.close()


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
