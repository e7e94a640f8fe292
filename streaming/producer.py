"""A Kafka producer of events in the service's contract (JSON value, entity id as key)."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from streaming.errors import ConfigurationError

__all__ = ["encode_event", "listing_events", "send_events"]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def encode_event(features: Mapping[str, Any], event_id: str | None = None) -> bytes:
    """The Kafka value of one event: features plus ``event_id`` and ``event_time`` (UTF-8 JSON).

    NaN features are sent as ``null`` (a missing value, not a malformed record).
    """
    body = {k: _clean(v) for k, v in features.items()}
    body["event_id"] = event_id or str(uuid.uuid4())
    body["event_time"] = datetime.now(UTC).isoformat()
    return json.dumps(body, allow_nan=False).encode()


def send_events(
    bootstrap_servers: str, topic: str, events: Iterable[tuple[str, bytes]], timeout_s: float = 30
) -> int:
    """Send ``(key, value)`` pairs with ``acks=all`` and wait until all are acknowledged.

    Returns:
        How many were sent.

    Raises:
        ConfigurationError: the broker cannot be reached or refuses the records.
    """
    try:
        producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers, acks="all", linger_ms=20, retries=5
        )
    except KafkaError as e:
        raise ConfigurationError(f"cannot reach Kafka at {bootstrap_servers}: {e}") from e
    sent = 0
    try:
        for key, value in events:
            producer.send(topic, key=key.encode(), value=value)
            sent += 1
        producer.flush(timeout=timeout_s)
    except KafkaError as e:
        raise ConfigurationError(f"producing to {topic} at {bootstrap_servers} failed: {e}") from e
    finally:
        producer.close()
    return sent


def listing_events(count: int, seed: int, malformed_every: int = 0) -> Iterator[tuple[str, bytes]]:
    """Synthetic listing events ``(key, value)``: the listing id as key, its features as value.

    Args:
        count: How many events.
        seed: Seed of the listings generator.
        malformed_every: When > 0, every N-th value is truncated JSON (to exercise quarantine).
    """
    from models.listings import FEATURE_COLUMNS, ID_COLUMN, generate_listings

    listings = generate_listings(count, seed=seed)
    for i, row in enumerate(listings.to_dict("records"), start=1):
        key = str(row[ID_COLUMN])
        features = {c: row[c] for c in FEATURE_COLUMNS}
        if malformed_every and i % malformed_every == 0:
            yield key, _malformed(features, i // malformed_every)
        else:
            yield key, encode_event(features)


def _malformed(features: Mapping[str, Any], n: int) -> bytes:
    """The n-th malformed value: truncated JSON, a wrong type, or bytes that are not UTF-8."""
    kind = n % 3
    if kind == 0:
        return b'{"truncated": '
    if kind == 1:
        return encode_event({**features, "accommodates": "a few"})
    return b"\xc3\x28 not utf-8"
