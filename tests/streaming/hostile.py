"""The catalogue of hostile records: each with its Kafka key and value and the verdict expected.

Used by the parse unit tests (exact kinds and flags), by the service test on the real broker,
and checked against the table in docs/errors.md. Features are those of the test model
(``room_type`` string, ``accommodates`` and ``bedrooms`` double; ``bedrooms`` optional).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# The size limit the tests run with, so an oversized value stays small.
MAX_VALUE_BYTES = 4096


def _event(**fields: object) -> bytes:
    body: dict[str, object] = {"room_type": "Private room", "accommodates": 2.0, "bedrooms": 1.0}
    body.update(fields)
    return json.dumps(body).encode()


_GOOD = '"room_type": "Private room", "accommodates": 2'


@dataclass(frozen=True)
class Case:
    """One hostile record and what must become of it.

    ``kind`` is the quarantine ``error_kind``, or ``None`` when the record is scored;
    ``flag`` is the profile kind its predictions row is flagged with (``None``: no flag).
    """

    name: str
    value: bytes | None
    kind: str | None = None
    flag: str | None = None
    key: bytes = b""  # empty: the case's own key, ``case-<index>`` (see :func:`key_of`)
    detail: str = ""  # a part of error_detail / profile_flags the user must see


def key_of(index: int, case: Case) -> bytes:
    """The Kafka key case ``index`` is sent with: its own, or ``case-<index>``."""
    return case.key or f"case-{index}".encode()


CASES: tuple[Case, ...] = (
    Case("a valid event", _event()),
    Case("a tombstone (null value)", None, "tombstone", detail="tombstone"),
    Case("a zero-length value", b"", "empty_value", detail="zero bytes"),
    Case("a value of only whitespace", b"  \n\t ", "empty_value", detail="only whitespace"),
    Case(
        "a value over --max-value-bytes",
        _event(padding="x" * MAX_VALUE_BYTES),
        "oversized",
        detail=f"more than the {MAX_VALUE_BYTES} allowed",
    ),
    Case("a value that is not UTF-8", b'{"room_type": "\xff\xfe"}', "invalid_utf8"),
    Case(
        "a valid event whose key is not UTF-8",
        _event(),
        key=b"\xff\xfe-not-utf8",
    ),
    Case("a truncated object", b'{"room_type": "Private room", "accommodates":', "malformed_json"),
    Case(
        "single-quoted strings",
        b"{'room_type': 'Private room', 'accommodates': 2}",
        "malformed_json",
    ),
    Case("a trailing comma", b"{" + _GOOD.encode() + b",}", "malformed_json"),
    Case(
        "a number with a leading zero",
        b'{"room_type": "Private room", "accommodates": 02}',
        "malformed_json",
    ),
    Case("a JSON array", b"[" + _event() + b"]", "not_an_object", detail="not an object"),
    Case("a bare JSON number", b"42", "not_an_object"),
    Case("a bare JSON string", b'"Private room"', "not_an_object"),
    Case(
        "nesting 2000 levels deep",
        b'{"room_type": ' + b"[" * 2000 + b"]" * 2000 + b"}",
        "too_deeply_nested",
    ),
    Case(
        "an object followed by garbage", _event() + b" trailing", "trailing_data", detail="trailing"
    ),
    Case("two objects back to back", _event() + _event(), "concatenated_objects"),
    Case("two objects on two lines", _event() + b"\n" + _event(), "concatenated_objects"),
    Case(
        "a field given twice",
        b"{" + _GOOD.encode() + b', "accommodates": 3}',
        "duplicate_field",
        detail="'accommodates' given twice",
    ),
    Case(
        "a required field absent",
        b'{"room_type": "Private room"}',
        "missing_field",
        detail="missing field 'accommodates'",
    ),
    Case(
        "a string where a number is expected",
        _event(accommodates="two"),
        "type_mismatch",
        detail="'accommodates' is not double: two",
    ),
    Case(
        "a number where a category is expected",
        _event(room_type=3),
        "type_mismatch",
        detail="'room_type' is not string: 3",
    ),
    Case("a boolean where a category is expected", _event(room_type=True), "type_mismatch"),
    Case(
        "an array where a category is expected", _event(room_type=["Private room"]), "type_mismatch"
    ),
    Case("an object where a number is expected", _event(accommodates={"n": 2}), "type_mismatch"),
    Case(
        "an event_time that is not a time",
        _event(event_time="yesterday"),
        "type_mismatch",
        detail="event_time",
    ),
    Case(
        "the NaN token",
        b"{" + _GOOD.encode() + b', "bedrooms": NaN}',
        "non_finite",
        detail="'bedrooms' is NaN",
    ),
    Case("the Infinity token", b"{" + _GOOD.encode() + b', "bedrooms": Infinity}', "non_finite"),
    Case("-Infinity", b"{" + _GOOD.encode() + b', "bedrooms": -Infinity}', "non_finite"),
    Case(
        "a number that overflows a double (1e400)",
        b'{"room_type": "Private room", "accommodates": 1e400, "bedrooms": 1.0}',
        "non_finite",
        detail="'accommodates' is Infinity",
    ),
    Case(
        "a negative count",
        _event(accommodates=-3.0),
        flag="out_of_range",
        detail="'accommodates' is -3.0",
    ),
    Case("a huge but finite number (1e308)", _event(bedrooms=1e308), flag="out_of_range"),
    Case(
        "a category unseen in training",
        _event(room_type="Castle"),
        flag="unseen_category",
        detail="'Castle'",
    ),
    Case(
        "a lone surrogate escape in a category",
        b'{"room_type": "\\ud800", "accommodates": 2, "bedrooms": 1.0}',
        flag="unseen_category",
    ),
    Case("null for an optional feature", _event(bedrooms=None)),
    Case(
        "null for a required feature, compact",
        b'{"room_type":"Private room","accommodates":null,"bedrooms":1.0}',
    ),
    Case(
        "null for a required feature, spaced oddly",
        b'{"room_type": "Private room", "bedrooms": 1.0, "accommodates"\t:\n  null}',
    ),
    Case(
        "a field given twice, first as null",
        b'{"room_type": "Private room", "accommodates": null, "accommodates": 2}',
        "duplicate_field",
        detail="'accommodates' given twice",
    ),
    Case(
        "an unknown field given twice",
        _event()[:-1] + b', "note": 1, "note": 2}',
        "duplicate_field",
        detail="'note' given twice",
    ),
    Case(
        "a field given twice, last as null",
        b'{"room_type": "Private room", "accommodates": 2, "accommodates": null}',
        "duplicate_field",
        detail="'accommodates' given twice",
    ),
    Case("an unknown field beside a null feature", _event(bedrooms=None, note="x")),
    Case("an unknown extra field holding an object", _event(extra={"a": [1, {"b": 2}]})),
    Case(
        "a required feature only inside another object",
        b'{"room_type": "Private room", "extra": {"accommodates": null}, "bedrooms": 1}',
        "missing_field",
        detail="missing field 'accommodates'",
    ),
    Case(
        "null for a required feature, its name escaped",
        b'{"room_type": "Private room", "accommod\\u0061tes": null, "bedrooms": 1}',
    ),
    Case(
        "pretty-printed JSON", json.dumps(json.loads(_event(event_id="pretty")), indent=2).encode()
    ),
)
