"""Events in the service's contract and the malformed ones mixed in on purpose: pure, no broker."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal

import numpy as np
import pytest

from streaming.produce.events import (
    MALFORMED_KINDS,
    MalformedMix,
    encode_event,
    event_body,
    key_of,
    malformed_value,
    prepare_events,
)

MALFORMED_JSON, TYPE_MISMATCH, INVALID_UTF8 = MALFORMED_KINDS


def test_events_carry_the_features_an_id_and_a_time_with_nan_as_null() -> None:
    body = json.loads(encode_event({"bedrooms": float("nan"), "room_type": "Private room"}))
    assert body["bedrooms"] is None and body["room_type"] == "Private room"
    assert body["event_id"] and body["event_time"]


def test_a_rows_own_event_id_and_time_are_kept_and_the_id_is_text() -> None:
    at = datetime(2026, 11, 24, 8, 30, tzinfo=UTC)
    body = event_body({"event_id": 42, "event_time": at, "accommodates": 2})
    assert body == {"event_id": "42", "event_time": "2026-11-24T08:30:00+00:00", "accommodates": 2}
    assert event_body({"event_time": "2026-11-24T08:30:00Z"})["event_time"] == (
        "2026-11-24T08:30:00Z"
    )


def test_null_event_ids_and_times_are_made_up() -> None:
    first = event_body({"event_id": None, "event_time": None})
    second = event_body({"event_id": None, "event_time": None})
    assert first["event_id"] != second["event_id"]
    assert datetime.fromisoformat(first["event_time"]).tzinfo is not None


def test_table_values_become_json() -> None:
    body = event_body(
        {
            "price": Decimal("12.50"),
            "day": date(2026, 11, 24),
            "inf": float("inf"),
            "count": np.int64(3),
            "ratio": np.float64("nan"),
            "raw": b"\x00\xff",
            "tags": ["a", float("nan")],
            "nested": {"n": Decimal("1")},
            "flag": True,
        }
    )
    assert {k: v for k, v in body.items() if k not in ("event_id", "event_time")} == {
        "price": 12.5,
        "day": "2026-11-24",
        "inf": None,
        "count": 3,
        "ratio": None,
        "raw": "AP8=",
        "tags": ["a", None],
        "nested": {"n": 1.0},
        "flag": True,
    }
    json.dumps(body, allow_nan=False)


def test_a_key_is_the_fields_value_as_text() -> None:
    row = {"id": 7, "room": "Private room", "missing": float("nan")}
    assert [key_of(row, f) for f in ("id", "room", "missing", "absent")] == [
        "7",
        "Private room",
        None,
        None,
    ]


def _good() -> tuple[bytes, dict[str, object]]:
    body = event_body({"room_type": "Private room", "accommodates": 2.0, "bedrooms": None})
    return json.dumps(body).encode(), body


def test_truncated_json_is_the_value_cut_in_half() -> None:
    value, body = _good()
    bad = malformed_value(MALFORMED_JSON, value, body)
    assert bad == value[: len(value) // 2]
    with pytest.raises(json.JSONDecodeError):
        json.loads(bad)
    assert malformed_value(MALFORMED_JSON, b"42", None) == b'{"truncated": '


def test_a_wrong_type_sends_the_numbers_as_text() -> None:
    value, body = _good()
    bad = json.loads(malformed_value(TYPE_MISMATCH, value, body))
    assert bad == {**body, "accommodates": "2.0"}
    without_numbers = {"room_type": "Private room", "event_time": "2026-11-24T08:30:00Z"}
    assert json.loads(malformed_value(TYPE_MISMATCH, b"{}", without_numbers)) == {
        "room_type": "Private room",
        "event_time": "not a time",
    }


def test_not_utf8_puts_bytes_before_the_value_that_utf8_never_has() -> None:
    value, body = _good()
    bad = malformed_value(INVALID_UTF8, value, body)
    assert bad.endswith(value)
    with pytest.raises(UnicodeDecodeError):
        bad.decode()


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown malformed kind"):
        malformed_value("nonsense", b"{}", {})


@pytest.mark.parametrize(("share", "seed"), [(0.01, 1), (0.1, 7), (0.3, 3), (1 / 7, 11), (1.0, 0)])
def test_a_share_replaces_exactly_that_many_events_a_third_of_each_kind(
    share: float, seed: int
) -> None:
    events = 2100  # a multiple of 100, 7, 10 and 3
    mix = MalformedMix.of_share(share, seed)
    kinds = Counter(kind for i in range(1, events + 1) if (kind := mix.kind_at(i)))
    expected = round(events * share)
    assert sum(kinds.values()) == expected
    assert all(kinds[k] == expected // 3 for k in MALFORMED_KINDS)


def test_the_seed_decides_where_malformed_events_fall_and_the_same_seed_the_same_places() -> None:
    def places(seed: int) -> list[int]:
        mix = MalformedMix.of_share(0.01, seed)
        return [i for i in range(1, 1001) if mix.kind_at(i)]

    assert places(3) == places(3)
    assert places(3) != places(5)
    assert all(b - a == 100 for a, b in zip(places(3), places(3)[1:], strict=False))


def test_every_nth_is_the_nth_the_2nth_in_turn_wrong_type_not_utf8_truncated() -> None:
    mix = MalformedMix.every(5)
    assert [(i, mix.kind_at(i)) for i in range(1, 21) if mix.kind_at(i)] == [
        (5, TYPE_MISMATCH),
        (10, INVALID_UTF8),
        (15, MALFORMED_JSON),
        (20, TYPE_MISMATCH),
    ]


def test_prepare_events_encodes_rows_sends_lines_as_they_are_and_marks_the_malformed() -> None:
    line = b'{"room_type": "Shared room", "accommodates": 1}'
    rows = [("a", {"accommodates": 3.0}), ("b", line), (None, b"not json"), ("d", line)]
    events = list(prepare_events(rows, MalformedMix.every(2)))
    assert [(e.key, e.malformed) for e in events] == [
        ("a", None),
        ("b", TYPE_MISMATCH),
        (None, None),
        ("d", INVALID_UTF8),
    ]
    assert json.loads(events[0].value)["accommodates"] == 3.0
    assert json.loads(events[1].value) == {"room_type": "Shared room", "accommodates": "1"}
    assert events[2].value == b"not json"
    assert events[3].value == b"\xff\xfe" + line
