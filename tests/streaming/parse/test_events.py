"""parse_events: exact rows for each kind of good and bad record."""

from __future__ import annotations

from datetime import datetime

import pytest
from pyspark.sql import SparkSession
from pyspark.sql.types import (
    BinaryType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from infra.profile import CategoricalProfile, DataProfile, NumericProfile
from streaming.parse.events import LANDING_KINDS, ErrorKind, ParseRules, parse_events
from streaming.parse.schema import EventSchema
from streaming.produce.events import MALFORMED_KINDS, encode_event, event_body, malformed_value
from tests.streaming.hostile import CASES, MAX_VALUE_BYTES, key_of

SCHEMA = EventSchema(
    features=StructType(
        [
            StructField("room_type", StringType()),
            StructField("accommodates", DoubleType()),
            StructField("bedrooms", DoubleType()),
        ]
    ),
    required=frozenset({"room_type", "accommodates"}),
)
RECORDS = StructType(
    [
        StructField("key", BinaryType()),
        StructField("value", BinaryType()),
        StructField("topic", StringType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("timestamp", TimestampType()),
    ]
)
AT = datetime(2026, 11, 23, 12, 0, 0)
# Well-formed, but over the 256 bytes these tests allow: quarantined without being parsed.
OVERSIZED = b'{"room_type": "Hotel", "accommodates": 1, "padding": "' + b"x" * 220 + b'"}'


@pytest.fixture
def records(spark: SparkSession):  # type: ignore[no-untyped-def]
    values: list[bytes | None] = [
        b'{"event_id": "e1", "room_type": "Private room", "accommodates": 2, "bedrooms": 1.5}',
        b'{"room_type": "Entire home", "accommodates": 4, "bedrooms": null,'
        b' "event_time": "2026-11-23T10:00:00Z"}',
        b'{"room_type": "Shared room"}',
        b'{"room_type": "Shared room", "accommodates": "four"}',
        b"not json at all",
        b"\xff\xfe\xfa",
        None,
        b"[1, 2, 3]",
        b'{"room_type": "Hotel", "accommodates": 1, "unknown_extra": true}',
        b"",
        OVERSIZED,
        b'{"room_type": "Hotel", "accommodates":',
    ]
    rows = [(f"k{i}".encode(), v, "listings", i % 2, i, AT) for i, v in enumerate(values)]
    return spark.createDataFrame(rows, RECORDS)


def test_valid_records_become_typed_feature_rows(records) -> None:  # type: ignore[no-untyped-def]
    valid = parse_events(records, SCHEMA, ParseRules(max_value_bytes=256)).valid
    rows = sorted(valid.collect(), key=lambda r: r.offset)
    assert valid.columns == [
        "event_id", "key", "key_bytes", "event_time", "room_type", "accommodates", "bedrooms",
        "profile_flags", "topic", "partition", "offset", "timestamp",
    ]  # fmt: skip
    assert [
        (r.offset, r.event_id, r.key, r.room_type, r.accommodates, r.bedrooms) for r in rows
    ] == [
        (0, "e1", "k0", "Private room", 2.0, 1.5),
        (1, None, "k1", "Entire home", 4.0, None),
        (8, None, "k8", "Hotel", 1.0, None),
    ]
    assert rows[1].event_time == datetime(2026, 11, 23, 10, 0, 0)


def test_bad_records_are_quarantined_with_a_reason(records) -> None:  # type: ignore[no-untyped-def]
    bad = parse_events(records, SCHEMA, ParseRules(max_value_bytes=256)).quarantined
    rows = sorted(bad.collect(), key=lambda r: r.offset)
    assert [(r.offset, r.error_kind, r.error_detail) for r in rows] == [
        (2, ErrorKind.MISSING_FIELD, "missing field 'accommodates'"),
        (3, ErrorKind.TYPE_MISMATCH, "field 'accommodates' is not double: four"),
        (4, ErrorKind.MALFORMED_JSON, "value is not valid JSON: not json at all"),
        (5, ErrorKind.INVALID_UTF8, "value is not valid UTF-8"),
        (6, ErrorKind.TOMBSTONE, "record has no value (a tombstone: null value)"),
        (7, ErrorKind.NOT_AN_OBJECT, "value is JSON but not an object: [1, 2, 3]"),
        (9, ErrorKind.EMPTY_VALUE, "value is empty (zero bytes)"),
        (10, ErrorKind.OVERSIZED, f"value has {len(OVERSIZED)} bytes, more than the 256 allowed"),
        (
            11,
            ErrorKind.MALFORMED_JSON,
            'value is not valid JSON: {"room_type": "Hotel", "accommodates":',
        ),
    ]
    assert rows[3].value == b"\xff\xfe\xfa"
    assert rows[3].key == b"k5"
    assert (rows[0].topic, rows[0].partition, rows[0].timestamp) == ("listings", 0, AT)


def test_every_record_lands_on_exactly_one_side(records) -> None:  # type: ignore[no-untyped-def]
    parsed = parse_events(records, SCHEMA, ParseRules(max_value_bytes=256))
    offsets = [r.offset for r in parsed.valid.select("offset").collect()] + [
        r.offset for r in parsed.quarantined.select("offset").collect()
    ]
    assert sorted(offsets) == list(range(records.count()))


PROFILE = DataProfile(
    rows=72,
    numeric={
        "accommodates": NumericProfile(minimum=1.0, maximum=8.0),
        "bedrooms": NumericProfile(minimum=0.0, maximum=2.0, null_rate=0.3),
    },
    categorical={
        "room_type": CategoricalProfile(
            values=frozenset({"Entire home/apt", "Private room", "Shared room"})
        )
    },
)
RULES = ParseRules(max_value_bytes=MAX_VALUE_BYTES)


def _catalogue_frame(spark: SparkSession):  # type: ignore[no-untyped-def]
    rows = [(key_of(i, case), case.value, "listings", 0, i, AT) for i, case in enumerate(CASES)]
    return spark.createDataFrame(rows, RECORDS)


def _verdicts(
    spark: SparkSession, rules: ParseRules, profile: DataProfile | None
) -> dict[int, tuple[str | None, str | None]]:
    """Per offset: (error_kind, error_detail) when quarantined, (None, profile_flags) when
    scored. Every offset is on exactly one side."""
    parsed = parse_events(_catalogue_frame(spark), SCHEMA, rules, profile)
    verdicts = {r.offset: (None, r.profile_flags) for r in parsed.valid.collect()}
    for r in parsed.quarantined.collect():
        assert r.offset not in verdicts
        verdicts[r.offset] = (r.error_kind, r.error_detail)
    assert sorted(verdicts) == list(range(len(CASES)))
    return verdicts


def test_every_hostile_case_gets_its_verdict(spark: SparkSession) -> None:
    verdicts = _verdicts(spark, RULES, PROFILE)
    for i, case in enumerate(CASES):
        kind, said = verdicts[i]
        assert kind == case.kind, (case.name, said)
        flag_kind = said.split(":")[0] if said and not kind else None
        assert flag_kind == case.flag, (case.name, said)
        assert case.detail in (said or ""), (case.name, said)
        if case.kind:
            assert said, case.name


def test_the_producers_malformed_events_are_quarantined_as_the_kind_they_are_named_after(
    spark: SparkSession,
) -> None:
    good = {"room_type": "Private room", "accommodates": 2.0, "bedrooms": None}
    without_numbers = {"room_type": "Private room", "accommodates": None}
    made = [
        (kind, malformed_value(kind, encode_event(fields), event_body(fields)))
        for fields in (good, without_numbers)
        for kind in MALFORMED_KINDS
    ]
    rows = [(b"k", value, "listings", 0, i, AT) for i, (_, value) in enumerate(made)]
    quarantined = parse_events(spark.createDataFrame(rows, RECORDS), SCHEMA).quarantined
    kinds = [r.error_kind for r in sorted(quarantined.collect(), key=lambda r: r.offset)]
    assert kinds == [kind for kind, _ in made]


def test_the_catalogue_has_twenty_distinct_cases_and_every_kind() -> None:
    assert len({c.name for c in CASES}) == len(CASES) >= 20
    kinds = {c.kind for c in CASES if c.kind} | {c.flag for c in CASES if c.flag}
    every = {v for k, v in vars(ErrorKind).items() if k.isupper()} - set(LANDING_KINDS)
    assert kinds == every


def test_policies_move_profile_kinds_between_quarantine_flag_and_ignore(
    spark: SparkSession,
) -> None:
    rules = ParseRules(
        max_value_bytes=MAX_VALUE_BYTES,
        policies={"out_of_range": "quarantine", "unseen_category": "ignore", "non_finite": "flag"},
    )
    verdicts = _verdicts(spark, rules, PROFILE)
    for i, case in enumerate(CASES):
        kind, flags = verdicts[i]
        if case.flag == "out_of_range":
            assert kind == "out_of_range" and "outside the training range" in str(flags), case.name
        elif case.flag == "unseen_category":
            assert kind is None and flags is None, case.name
        elif case.kind == "non_finite":
            assert kind is None and flags is not None, case.name
            assert flags.startswith("non_finite: "), case.name


def test_without_a_profile_only_the_signature_and_finiteness_are_checked(
    spark: SparkSession,
) -> None:
    verdicts = _verdicts(spark, RULES, None)
    for i, case in enumerate(CASES):
        kind, said = verdicts[i]
        assert kind == case.kind and (kind is not None or said is None), case.name


def test_string_columns_of_valid_rows_are_valid_utf8(spark: SparkSession) -> None:
    valid = parse_events(_catalogue_frame(spark), SCHEMA, RULES, PROFILE).valid
    for row in valid.collect():
        for value in (row.key, row.event_id, row.room_type, row.profile_flags):
            if value is not None:
                value.encode("utf-8")  # a lone surrogate would raise here
    keys = {bytes(r.key_bytes) for r in valid.collect() if r.key_bytes is not None}
    assert keys == {b"\xff\xfe-not-utf8"}
