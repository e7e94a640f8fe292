"""Kafka values of events in the service's contract, and the malformed values mixed in on purpose.

Pure: nothing here talks to Kafka or reads a file.
"""

from __future__ import annotations

import base64
import json
import math
import random
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from fractions import Fraction
from typing import Any, NamedTuple

from streaming.parse.events import ErrorKind
from streaming.parse.schema import EVENT_ID, EVENT_TIME

__all__ = [
    "MALFORMED_KINDS",
    "MalformedMix",
    "OutgoingEvent",
    "encode_event",
    "event_body",
    "key_of",
    "malformed_value",
    "prepare_events",
]

# The quarantine's error kind each malformed value gets, in the order they take turns.
MALFORMED_KINDS = (ErrorKind.MALFORMED_JSON, ErrorKind.TYPE_MISMATCH, ErrorKind.INVALID_UTF8)
# A share is turned into a fraction with at most this denominator (0.01 -> 1/100).
_SHARE_DENOMINATOR = 1_000_000
_NOT_UTF8 = b"\xff\xfe"  # a UTF-16 byte-order mark: never valid in UTF-8


def _clean(value: Any) -> Any:
    """A row's value as JSON can hold it (see :func:`event_body`)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _clean(value.item())
    return value


def event_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON object of one event: every field of the row, plus ``event_id`` and ``event_time``.

    A row's own non-null ``event_id`` (as text) and ``event_time`` are kept, so that a replay
    sends the same ids and times; otherwise the id is a new UUID and the time is now (UTC).
    NaN and infinite numbers become ``null`` (a missing value, not a malformed record); times
    and dates are ISO 8601 text, decimals numbers, bytes base64 text.
    """
    body = {str(k): _clean(v) for k, v in fields.items()}
    event_id = body.get(EVENT_ID)
    body[EVENT_ID] = str(uuid.uuid4()) if event_id is None else str(event_id)
    if body.get(EVENT_TIME) is None:
        body[EVENT_TIME] = datetime.now(UTC).isoformat()
    return body


def key_of(row: Mapping[str, Any], field: str) -> str | None:
    """The Kafka key a row's ``field`` gives: its value as text, ``None`` when absent or null."""
    value = _clean(row.get(field))
    return None if value is None else str(value)


def _dumps(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, allow_nan=False).encode()


def encode_event(fields: Mapping[str, Any]) -> bytes:
    """The Kafka value of one event: :func:`event_body` as UTF-8 JSON."""
    return _dumps(event_body(fields))


def malformed_value(kind: str, value: bytes, body: Mapping[str, Any] | None) -> bytes:
    """The malformed stand-in of an event whose value is ``value`` (and JSON object ``body``,
    when it is one), that the service quarantines with error kind ``kind``.

    - ``malformed_json``: the value cut in half (truncated JSON);
    - ``type_mismatch``: the event with its numbers sent as text (``"accommodates": "2.0"``);
      an event without numbers gets ``"event_time": "not a time"``;
    - ``invalid_utf8``: the value behind two bytes that are not UTF-8.

    Raises:
        ValueError: ``kind`` is none of :data:`MALFORMED_KINDS`.
    """
    if kind == ErrorKind.MALFORMED_JSON:
        return value[: len(value) // 2] if value.lstrip().startswith(b"{") else b'{"truncated": '
    if kind == ErrorKind.TYPE_MISMATCH:
        fields = dict(body or {})
        numbers = {
            k: str(v)
            for k, v in fields.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        fields.update(numbers or {EVENT_TIME: "not a time"})
        return _dumps(fields)
    if kind == ErrorKind.INVALID_UTF8:
        return _NOT_UTF8 + value
    raise ValueError(f"unknown malformed kind {kind!r}: use one of {MALFORMED_KINDS}")


@dataclass(frozen=True)
class MalformedMix:
    """Which events are replaced by malformed ones, and by which kind.

    Exactly ``share`` of the events, spread evenly: with a share of 1/100, one in each run of
    100 consecutive events (which one is set by the seed). The malformed ones take the kinds of
    :data:`MALFORMED_KINDS` in turn, so that N events with a share s hold N*s malformed ones
    (when that is whole), a third of each kind.
    """

    share: Fraction
    offset: int = 0

    @classmethod
    def of_share(cls, share: float, seed: int) -> MalformedMix:
        """``share`` (0 to 1) of the events; ``seed`` decides where they fall."""
        fraction = Fraction(share).limit_denominator(_SHARE_DENOMINATOR)
        return cls(fraction, random.Random(seed).randrange(fraction.denominator))

    @classmethod
    def every(cls, n: int) -> MalformedMix:
        """Every ``n``-th event (the ``n``-th, the ``2n``-th...)."""
        return cls(Fraction(1, n))

    def _malformed_before(self, index: int) -> int:
        return (index * self.share.numerator + self.offset) // self.share.denominator

    def kind_at(self, index: int) -> str | None:
        """The malformed kind of the ``index``-th event (from 1), ``None`` for a good one."""
        count = self._malformed_before(index)
        if count == self._malformed_before(index - 1):
            return None
        return MALFORMED_KINDS[count % len(MALFORMED_KINDS)]


class OutgoingEvent(NamedTuple):
    """One Kafka record to send; ``malformed`` names its kind when it is malformed on purpose."""

    key: str | None
    value: bytes
    malformed: str | None = None


def _object_of(value: bytes) -> Mapping[str, Any] | None:
    try:
        body = json.loads(value)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def prepare_events(
    rows: Iterable[tuple[str | None, Mapping[str, Any] | bytes]],
    mix: MalformedMix | None = None,
) -> Iterator[OutgoingEvent]:
    """Kafka records of ``(key, row)`` pairs, with ``mix``'s share replaced by malformed ones.

    A row is either the fields of an event (encoded with :func:`event_body`) or a value sent
    as it is (a line of a JSON-lines file).
    """
    for index, (key, row) in enumerate(rows, start=1):
        body: Mapping[str, Any] | None
        if isinstance(row, bytes):
            value, body = row, None
        else:
            body = event_body(row)
            value = _dumps(body)
        kind = mix.kind_at(index) if mix is not None else None
        if kind is None:
            yield OutgoingEvent(key, value)
        else:
            if body is None:
                body = _object_of(value)
            yield OutgoingEvent(key, malformed_value(kind, value, body), kind)
