"""The broker of a run, its topics, and the two ways events reach them: pre-loaded or live."""

from __future__ import annotations

import itertools
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaError, Message, Producer
from kafka.admin import KafkaAdminClient, NewTopic

from streaming.produce.synthetic import listing_events

__all__ = [
    "LiveSend",
    "create_topic",
    "event_pool",
    "local_broker",
    "preload",
    "send_at_rate",
]

PARTITIONS = 2
_CHUNK = 50_000  # events generated at once while pre-loading (a multiple of 100)


@contextmanager
def local_broker(script: Path, port: int, data_dir: Path, env: Mapping[str, str]) -> Iterator[str]:
    """The project's broker (``scripts/kafka-broker``) on ``port``, stopped on exit.

    Yields:
        Its bootstrap address.
    """
    broker_env = {**env, "KAFKA_PORT": str(port), "KAFKA_DATA_DIR": str(data_dir)}
    subprocess.run([str(script), "start"], env=broker_env, check=True)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(script), "stop"], env=broker_env, check=False)


def create_topic(bootstrap: str, name: str, broker_time: bool = False) -> str:
    """Create topic ``name`` with the run's partition count; returns the name.

    Args:
        broker_time: Records get the broker's clock when it appends them as their timestamp
            (``LogAppendTime``), instead of the producer's at ``send`` (``CreateTime``).
    """
    configs = {"message.timestamp.type": "LogAppendTime"} if broker_time else {}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    try:
        admin.create_topics(
            [NewTopic(name, num_partitions=PARTITIONS, replication_factor=1, topic_configs=configs)]
        )
    finally:
        admin.close()
    return name


def _delivering_producer(bootstrap: str, **settings: object) -> tuple[Producer, list[KafkaError]]:
    """A librdkafka producer (acks from the partition leader) and the delivery errors it meets."""
    failures: list[KafkaError] = []

    def delivered(error: KafkaError | None, _: Message) -> None:
        if error is not None:
            failures.append(error)

    config = {"bootstrap.servers": bootstrap, "acks": "1", "on_delivery": delivered, **settings}
    return Producer(config), failures


def _flush(producer: Producer, failures: list[KafkaError], topic: str) -> None:
    """Wait for every queued record; raise when one was not delivered."""
    if producer.flush(60) or failures:
        raise RuntimeError(f"{len(failures)} records were not delivered to {topic}: {failures[:1]}")


def preload(bootstrap: str, topic: str, count: int, seed: int, malformed_every: int = 0) -> int:
    """Create ``topic`` and fill it with ``count`` listing events, every acknowledged.

    Args:
        malformed_every: When > 0, every N-th event is malformed (``listing_events``).

    Returns:
        How many were sent.

    Raises:
        RuntimeError: a record was not delivered.
    """
    create_topic(bootstrap, topic)
    producer, failures = _delivering_producer(
        bootstrap, **{"linger.ms": 50, "batch.size": 1024 * 1024, "message.max.bytes": 8 << 20}
    )
    sent = 0
    for chunk, start in enumerate(range(0, count, _CHUNK)):
        size = min(_CHUNK, count - start)
        for key, value in listing_events(size, seed + chunk, malformed_every):
            _produce(producer, topic, key.encode(), value)
        producer.poll(0)
        sent += size
    _flush(producer, failures, topic)
    return sent


def event_pool(count: int, seed: int) -> list[tuple[bytes, bytes]]:
    """``count`` valid events ready to send, cycled through by :func:`send_at_rate`."""
    return [(key.encode(), value) for key, value in listing_events(count, seed)]


def _produce(producer: Producer, topic: str, key: bytes, value: bytes) -> None:
    """Queue one record, waiting for room while the producer's queue is full."""
    while True:
        try:
            producer.produce(topic, key=key, value=value)
            return
        except BufferError:
            producer.poll(0.01)


@dataclass(frozen=True)
class LiveSend:
    """What a live send did: events sent and the seconds it took."""

    sent: int
    seconds: float


def send_at_rate(
    bootstrap: str,
    topic: str,
    pool: Sequence[tuple[bytes, bytes]],
    rate: int,
    seconds: float,
    tick_s: float = 0.01,
) -> LiveSend:
    """Send ``rate * seconds`` events at ``rate`` per second, in small paced steps.

    The load generator is librdkafka's producer (``confluent-kafka``): at 5,000 events/s
    kafka-python's producer took 87% of a core here (13.0 CPU-seconds in 15 s; librdkafka's
    0.5), half of this 2-core machine, which the arms under test then lacked; and its Python
    loop held the interpreter lock that the service arm's driver needs for its
    ``foreachBatch`` call in the same process. A producer that falls behind sends the rest as
    fast as it can, so ``seconds`` tells whether the rate was met.

    Raises:
        RuntimeError: a record was not delivered.
    """
    total = int(rate * seconds)
    producer, failures = _delivering_producer(bootstrap, **{"linger.ms": 5})
    events = itertools.cycle(pool)
    sent = 0
    started = time.monotonic()
    while sent < total:
        due = min(total, int(rate * (time.monotonic() - started)) + 1)
        for key, value in itertools.islice(events, due - sent):
            _produce(producer, topic, key, value)
        sent = max(sent, due)
        producer.poll(0)
        time.sleep(tick_s)
    _flush(producer, failures, topic)
    return LiveSend(sent, time.monotonic() - started)
