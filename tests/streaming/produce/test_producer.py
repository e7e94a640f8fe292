"""Synthetic listing events in the service's contract, some deliberately malformed."""

from __future__ import annotations

import json

from demo.events import listing_events
from models.listings import FEATURE_COLUMNS
from streaming.produce.producer import encode_event


def test_events_carry_the_features_an_id_and_a_time_with_nan_as_null() -> None:
    body = json.loads(encode_event({"bedrooms": float("nan"), "room_type": "Private room"}))
    assert body["bedrooms"] is None and body["room_type"] == "Private room"
    assert body["event_id"] and body["event_time"]


def test_every_nth_event_is_malformed_in_turn_three_ways() -> None:
    events = list(listing_events(30, seed=1, malformed_every=5))
    assert len(events) == 30
    assert all(key.isdigit() for key, _ in events)
    bad = [value for i, (_, value) in enumerate(events, start=1) if i % 5 == 0]
    good = [value for i, (_, value) in enumerate(events, start=1) if i % 5]
    assert all(set(FEATURE_COLUMNS) <= set(json.loads(v)) for v in good)
    kinds = set()
    for value in bad:
        try:
            body = json.loads(value)
            kinds.add("wrong type" if body["accommodates"] == "a few" else "?")
        except UnicodeDecodeError:
            kinds.add("not utf-8")
        except json.JSONDecodeError:
            kinds.add("truncated")
    assert kinds == {"truncated", "wrong type", "not utf-8"}
