"""A Kafka producer of events in the service's contract (JSON value, entity id as key)."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from streaming.errors import ConfigurationError

__all__ = ["encode_event", "read_event_lines", "send_events"]


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
    bootstrap_servers: str,
    topic: str,
    events: Iterable[tuple[str | None, bytes]],
    timeout_s: float = 30,
    client_config: Mapping[str, Any] | None = None,
) -> int:
    """Send ``(key, value)`` pairs with ``acks=all`` and wait until all are acknowledged.

    Args:
        client_config: kafka-python settings (security protocol, SASL credentials...).

    Returns:
        How many were sent.

    Raises:
        ConfigurationError: the broker cannot be reached or refuses the records.
    """
    try:
        producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            linger_ms=20,
            retries=5,
            **dict(client_config or {}),
        )
    except KafkaError as e:
        raise ConfigurationError(f"cannot reach Kafka at {bootstrap_servers}: {e}") from e
    sent = 0
    try:
        for key, value in events:
            producer.send(topic, key=key.encode() if key is not None else None, value=value)
            sent += 1
        producer.flush(timeout=timeout_s)
    except KafkaError as e:
        raise ConfigurationError(f"producing to {topic} at {bootstrap_servers} failed: {e}") from e
    finally:
        producer.close()
    return sent


def read_event_lines(
    path: Path, key_field: str | None = None
) -> Iterator[tuple[str | None, bytes]]:
    """``(key, value)`` pairs from a JSON-lines file, one event object per line.

    A line is sent as it is (bytes unchanged), so a file can also carry malformed events. The
    key is the value of ``key_field`` in the line's object, when given and present.

    Raises:
        ConfigurationError: the file cannot be read.
    """
    try:
        handle = path.open("rb")
    except OSError as e:
        raise ConfigurationError(f"cannot read --input {path}: {e.strerror}") from e
    with handle:
        for line in handle:
            value = line.rstrip(b"\r\n")
            if not value.strip():
                continue
            yield _key_of(value, key_field), value


def _key_of(value: bytes, key_field: str | None) -> str | None:
    if key_field is None:
        return None
    try:
        body = json.loads(value)
    except ValueError:
        return None
    key = body.get(key_field) if isinstance(body, dict) else None
    return None if key is None else str(key)
