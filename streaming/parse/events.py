"""Parse Kafka records into model input rows; records that do not fit become quarantine rows.

Pure DataFrame transformations: nothing here talks to Kafka, Delta or MLflow.

Every record gets one verdict, in one pass over the values (see :func:`judge_events`): scored,
scored and flagged (outside the training data's profile), or quarantined with an error kind
and a detail naming the field and the value. The error kinds and their examples are in
``docs/errors.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, FloatType, StringType, StructField, StructType

from infra.profile import DataProfile
from streaming.parse.schema import EVENT_ID, EVENT_TIME, EventSchema

__all__ = [
    "DEFAULT_MAX_VALUE_BYTES",
    "PROFILE_KINDS",
    "QUARANTINE_COLUMNS",
    "ErrorKind",
    "ParseRules",
    "ParsedEvents",
    "Policy",
    "judge_events",
    "parse_events",
    "profile_flags",
    "rejected_rows",
    "valid_rows",
]

_KAFKA_COORDINATES = ("topic", "partition", "offset", "timestamp")
_RAW_SNIPPET = 80
# Kafka's own default largest message; a bigger value is quarantined unparsed.
DEFAULT_MAX_VALUE_BYTES = 1_048_576
# A value that fails to parse and opens this many arrays/objects in a row is called too deep
# (Jackson itself refuses nesting deeper than 1000).
_DEEP_NESTING = 100
_INFINITY = float("inf")


class ErrorKind:
    """Values of the quarantine table's ``error_kind`` column (see ``docs/errors.md``)."""

    TOMBSTONE = "tombstone"
    EMPTY_VALUE = "empty_value"
    OVERSIZED = "oversized"
    INVALID_UTF8 = "invalid_utf8"
    TOO_DEEPLY_NESTED = "too_deeply_nested"
    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    TRAILING_DATA = "trailing_data"
    CONCATENATED_OBJECTS = "concatenated_objects"
    DUPLICATE_FIELD = "duplicate_field"
    MISSING_FIELD = "missing_field"
    TYPE_MISMATCH = "type_mismatch"
    NON_FINITE = "non_finite"
    OUT_OF_RANGE = "out_of_range"
    UNSEEN_CATEGORY = "unseen_category"


class Policy:
    """What happens to an event that is well-formed but outside the training data's profile."""

    QUARANTINE = "quarantine"  # to the quarantine table, with the kind as error_kind
    FLAG = "flag"  # scored; the predictions row's profile_flags says why
    IGNORE = "ignore"  # scored, not flagged


PROFILE_KINDS = (ErrorKind.NON_FINITE, ErrorKind.OUT_OF_RANGE, ErrorKind.UNSEEN_CATEGORY)
_DEFAULT_POLICIES = {
    ErrorKind.NON_FINITE: Policy.QUARANTINE,
    ErrorKind.OUT_OF_RANGE: Policy.FLAG,
    ErrorKind.UNSEEN_CATEGORY: Policy.FLAG,
}


@dataclass(frozen=True)
class ParseRules:
    """How strictly records are judged.

    Attributes:
        max_value_bytes: A larger value is quarantined as ``oversized``, unparsed.
        policies: Per profile kind (``non_finite``, ``out_of_range``, ``unseen_category``):
            ``quarantine``, ``flag`` or ``ignore``. Kinds not named keep their defaults
            (non-finite numbers quarantined; out-of-range numbers and unseen categories
            scored and flagged).
    """

    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    policies: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind, policy in self.policies.items():
            if kind not in PROFILE_KINDS:
                raise ValueError(f"unknown profile kind {kind!r}: use one of {PROFILE_KINDS}")
            if policy not in (Policy.QUARANTINE, Policy.FLAG, Policy.IGNORE):
                raise ValueError(f"policy for {kind} must be quarantine, flag or ignore")

    def policy(self, kind: str) -> str:
        return self.policies.get(kind, _DEFAULT_POLICIES[kind])


@dataclass(frozen=True)
class ParsedEvents:
    """The two sides of a parse: rows the model can score and rows to quarantine.

    ``valid``: event_id, key, key_bytes, event_time, the feature columns, profile_flags,
    topic, partition, offset, timestamp. ``quarantined``: key and value (raw bytes), topic,
    partition, offset, timestamp, error_kind, error_detail.
    """

    valid: DataFrame
    quarantined: DataFrame


def _snippet(column: Column) -> Column:
    return F.when(
        F.length(column) > _RAW_SNIPPET, F.concat(F.substring(column, 1, 77), F.lit("..."))
    ).otherwise(column)


def _string_array(values: list[str]) -> Column:
    return F.array(*[F.lit(v) for v in values]).cast("array<string>")


def _joined(details: Column) -> Column:
    """An array of detail strings as one string, ``""`` when empty."""
    return F.coalesce(F.array_join(details, "; "), F.lit(""))


_CORRUPT = "_corrupt_record"
# Jackson's lenient extras that no JSON producer should rely on are off: a single-quoted
# string or a NaN token is not JSON (NaN is then told apart as non_finite).
_STRICT = {"allowSingleQuotes": "false"}


def _single_object(text: Column) -> Column:
    """True when ``text`` is one object with nothing after it.

    Cheap for the common case (one ``{`` first and one ``}`` last: a flat object); otherwise
    the value is parsed inside an array with a sentinel after it, which fails on trailing data
    and counts one element too many for concatenated values.
    """
    flat = (
        F.startswith(text, F.lit("{"))
        & F.endswith(text, F.lit("}"))
        & (F.locate("{", text, 2) == 0)
        & (F.locate("}", text) == F.length(text))
    )
    wrapped = F.from_json(F.concat(F.lit("["), text, F.lit(",{}]")), "array<string>", _STRICT)
    return F.coalesce(flat | (F.size(wrapped) == 2), F.lit(False))


def _non_finite(typed: Column, names: list[str]) -> Column:
    """Details of the floating-point fields holding NaN or an infinity (``""`` when none)."""
    if not names:
        return F.lit("")
    values = F.array(
        *[F.struct(F.lit(n).alias("name"), typed[n].cast("double").alias("v")) for n in names]
    )
    bad = F.filter(
        values,
        lambda f: F.coalesce(F.isnan(f["v"]) | (F.abs(f["v"]) == F.lit(_INFINITY)), F.lit(False)),
    )
    return _joined(
        F.transform(
            bad,
            lambda f: F.concat(F.lit("field '"), f["name"], F.lit("' is "), f["v"].cast("string")),
        )
    )


def _out_of_range(typed: Column, ranges: Mapping[str, tuple[float, float]]) -> Column:
    if not ranges:
        return F.lit("")
    values = F.array(
        *[
            F.struct(
                F.lit(n).alias("name"),
                typed[n].cast("double").alias("v"),
                F.lit(lo).alias("lo"),
                F.lit(hi).alias("hi"),
            )
            for n, (lo, hi) in ranges.items()
        ]
    )
    outside = F.filter(
        values,
        lambda f: F.coalesce(
            ~F.isnan(f["v"])
            & (F.abs(f["v"]) != F.lit(_INFINITY))
            & ((f["v"] < f["lo"]) | (f["v"] > f["hi"])),
            F.lit(False),
        ),
    )
    return _joined(
        F.transform(
            outside,
            lambda f: F.format_string(
                "field '%s' is %s, outside the training range [%s, %s]",
                f["name"],
                f["v"].cast("string"),
                f["lo"].cast("string"),
                f["hi"].cast("string"),
            ),
        )
    )


def _unseen(typed: Column, categories: Mapping[str, frozenset[str]]) -> Column:
    if not categories:
        return F.lit("")
    details = [
        F.when(
            typed[n].isNotNull() & ~typed[n].isin(sorted(values)),
            F.concat(
                F.lit(f"field '{n}' has '"), _snippet(typed[n]), F.lit("', unseen in training")
            ),
        )
        for n, values in categories.items()
    ]
    return F.concat_ws("; ", *details)


def _profile_checks(
    typed: Column, schema: EventSchema, profile: DataProfile | None
) -> dict[str, Column]:
    """Each profile kind's details for a typed event (``""`` when it is within the profile)."""
    types = {f.name: f.dataType for f in schema.features.fields}
    floating = [n for n, t in types.items() if isinstance(t, DoubleType | FloatType)]
    checks = {ErrorKind.NON_FINITE: _non_finite(typed, floating)}
    ranges = profile.ranges() if profile else {}
    categories = profile.categories() if profile else {}
    checks[ErrorKind.OUT_OF_RANGE] = _out_of_range(
        typed, {n: r for n, r in ranges.items() if n in types and n != EVENT_TIME}
    )
    checks[ErrorKind.UNSEEN_CATEGORY] = _unseen(
        typed,
        {n: v for n, v in categories.items() if isinstance(types.get(n), StringType)},
    )
    return checks


def _flags(checks: Mapping[str, Column], kinds: list[str]) -> Column:
    """``KIND: detail; KIND: detail`` for the given kinds' non-empty details, else null."""
    flags = [
        F.when(checks[kind] != "", F.concat(F.lit(f"{kind}: "), checks[kind])) for kind in kinds
    ]
    if not flags:
        return F.lit(None).cast("string")
    return F.nullif(F.concat_ws("; ", *flags), F.lit(""))


def profile_flags(
    features: Column, schema: EventSchema, profile: DataProfile | None, rules: ParseRules
) -> Column:
    """Why a row of typed features is outside the training profile (null when it is not).

    For rows that do not come from Kafka (``batch``), where there is no quarantine: every
    kind whose policy is not ``ignore`` is flagged.
    """
    checks = _profile_checks(features, schema, profile)
    return _flags(checks, [k for k in PROFILE_KINDS if rules.policy(k) != Policy.IGNORE])


def _string_confusions(typed: Column, text: Column, names: list[str]) -> Column:
    """Details of string fields given a JSON number, boolean, object or array.

    Spark's JSON reader turns any token into a string field's text, so ``3`` and ``"3"`` both
    read as ``"3"``. Only a text that looks like such a token is checked against the raw
    value (is the field given as a quoted string?), so the cost stays off ordinary values.
    """
    if not names:
        return F.lit("")
    fields = F.array(
        *[
            F.struct(
                F.lit(n).alias("name"),
                F.lit(f'"\\Q{n}\\E"\\s*:\\s*"').alias("quoted"),
                typed[n].alias("v"),
            )
            for n in names
        ]
    )
    confused = F.filter(
        fields,
        lambda f: F.coalesce(
            F.regexp_like(f["v"], F.lit(r"^(-?[0-9].*|true|false|\{.*|\[.*)$"))
            & ~F.regexp_like(text, f["quoted"]),
            F.lit(False),
        ),
    )
    return _joined(
        F.transform(
            confused,
            lambda f: F.concat(
                F.lit("field '"), f["name"], F.lit("' is not string: "), _snippet(f["v"])
            ),
        )
    )


def judge_events(
    records: DataFrame,
    schema: EventSchema,
    rules: ParseRules | None = None,
    profile: DataProfile | None = None,
) -> DataFrame:
    """Every Kafka record with its verdict, in one pass over the values.

    Returns ``records``' columns plus ``_typed`` (the value parsed against the signature),
    ``error_kind`` and ``error_detail`` (both null for a record the model can score) and
    ``profile_flags`` (why a scored record is outside the training profile, else null).

    The value is parsed once, typed, and checked: one object and nothing after it, no field
    given twice, string fields given as strings, finite numbers, and (with a profile) numbers
    inside the training range and categories seen in training. Only a record that does not
    clear is looked at again to say what is wrong with it.
    """
    rules = rules or ParseRules()
    max_bytes = rules.max_value_bytes
    json_schema = schema.json_schema()
    typed_schema = StructType([*json_schema.fields, StructField(_CORRUPT, StringType())])
    text = F.col("value").cast("string")
    size = F.octet_length(F.col("value"))
    typed = F.when(
        size <= max_bytes,
        F.from_json(
            text,
            typed_schema,
            {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT, **_STRICT},
        ),
    )
    keys = F.when(size <= max_bytes, F.json_object_keys(text))
    parsed = records.select(
        "*",
        typed.alias("_typed"),
        keys.alias("_keys"),
        F.coalesce((size <= max_bytes) & _single_object(text), F.lit(False)).alias("_one"),
        F.is_valid_utf8(text).alias("_utf8"),
        size.alias("_size"),
    )
    t = F.col("_typed")
    strings = [f.name for f in schema.features.fields if isinstance(f.dataType, StringType)]
    checks = _profile_checks(t, schema, profile)
    required = [n for n in schema.names if n in schema.required]
    structural = (
        F.col("value").isNotNull()
        & F.col("_utf8")
        & t.isNotNull()
        & t[_CORRUPT].isNull()
        & (F.size(F.array_distinct("_keys")) == F.size("_keys"))
    )
    for name in required:
        structural = structural & t[name].isNotNull()
    cleared = structural & F.col("_one")
    for kind, detail in checks.items():
        if rules.policy(kind) == Policy.QUARANTINE:
            cleared = cleared & (detail == "")
    staged = parsed.select(
        "*",
        F.coalesce(cleared, F.lit(False)).alias("_cleared"),
        _string_confusions(t, text, strings).alias("_confused"),
    )
    cleared = F.col("_cleared") & (F.col("_confused") == "")
    # The untyped view of the value, only for the records that did not clear.
    raw_fields = F.when(
        ~cleared & (F.col("_size") <= max_bytes),
        F.from_json(text, "map<string,string>", _STRICT),
    )
    suspect = staged.select("*", cleared.alias("_ok"), raw_fields.alias("_fields"))
    raw = F.col("_fields")
    ok = F.col("_ok")

    # Each check is written once over arrays of field names (higher-order functions), so the
    # generated code stays small however many features the model has.
    missing = F.filter(_string_array(required), lambda name: ~F.map_contains_key(raw, name))
    missing_detail = _joined(
        F.transform(missing, lambda name: F.concat(F.lit("missing field '"), name, F.lit("'")))
    )
    declared = F.array(
        *[
            F.struct(
                F.lit(f.name).alias("name"),
                F.lit(f.dataType.simpleString()).alias("type"),
                t[f.name].isNull().alias("untyped"),
            )
            for f in json_schema.fields
        ]
    )
    mismatched = F.filter(
        declared, lambda f: f["untyped"] & F.try_element_at(raw, f["name"]).isNotNull()
    )
    mismatch_detail = _joined(
        F.transform(
            mismatched,
            lambda f: F.concat(
                F.lit("field '"), f["name"], F.lit("' is not "), f["type"], F.lit(": "),
                _snippet(F.try_element_at(raw, f["name"])),
            ),
        )
    )  # fmt: skip
    keys_col = F.col("_keys")
    duplicated = F.array_distinct(
        F.filter(keys_col, lambda k: F.size(F.filter(keys_col, lambda j: j == k)) > 1)
    )
    duplicate_detail = _joined(
        F.transform(duplicated, lambda k: F.concat(F.lit("field '"), k, F.lit("' given twice")))
    )
    checked = suspect.select(
        "*",
        F.when(~ok, missing_detail).alias("_missing"),
        F.when(~ok, mismatch_detail).alias("_mismatch"),
        F.when(~ok, duplicate_detail).alias("_duplicate"),
        *[F.when(~ok, detail).alias(f"_{kind}") for kind, detail in checks.items()],
        _flags(checks, [k for k in PROFILE_KINDS if rules.policy(k) == Policy.FLAG]).alias(
            "profile_flags"
        ),
    )
    starts_object = F.startswith(F.ltrim(text), F.lit("{"))
    is_json = F.from_json(
        F.concat(F.lit("["), text, F.lit("]")), "array<string>", _STRICT
    ).isNotNull()
    concatenated = F.regexp_like(text, F.lit(r"(?s)^\s*\{.*\}\s*,?\s*[\{\[].*$"))
    # The typed parse read one clean object, but the value does not end there.
    first_object = t.isNotNull() & t[_CORRUPT].isNull() & ~F.col("_one")
    deep = F.regexp_like(text, F.lit(f"([\\[{{]\\s*){{{_DEEP_NESTING}}}"))
    verdicts: list[tuple[Column, str, Column]] = [
        (
            F.col("value").isNull(),
            ErrorKind.TOMBSTONE,
            F.lit("record has no value (a tombstone: null value)"),
        ),
        (F.col("_size") == 0, ErrorKind.EMPTY_VALUE, F.lit("value is empty (zero bytes)")),
        (
            F.col("_size") > max_bytes,
            ErrorKind.OVERSIZED,
            F.format_string(
                "value has %d bytes, more than the %d allowed", "_size", F.lit(max_bytes)
            ),
        ),
        (~F.col("_utf8"), ErrorKind.INVALID_UTF8, F.lit("value is not valid UTF-8")),
        (
            F.regexp_like(text, F.lit(r"^\s*$")),
            ErrorKind.EMPTY_VALUE,
            F.format_string("value holds only whitespace (%d bytes)", "_size"),
        ),
        (
            raw.isNull() & ~is_json & deep,
            ErrorKind.TOO_DEEPLY_NESTED,
            F.lit(f"value nests arrays or objects more than {_DEEP_NESTING} levels deep"),
        ),
        (
            raw.isNull() & ~starts_object & is_json,
            ErrorKind.NOT_AN_OBJECT,
            F.concat(F.lit("value is JSON but not an object: "), _snippet(text)),
        ),
        (
            first_object & concatenated,
            ErrorKind.CONCATENATED_OBJECTS,
            F.concat(F.lit("value holds more than one JSON value: "), _snippet(text)),
        ),
        (
            first_object,
            ErrorKind.TRAILING_DATA,
            F.concat(F.lit("value has data after its JSON object: "), _snippet(text)),
        ),
        (
            raw.isNull(),
            ErrorKind.MALFORMED_JSON,
            F.concat(F.lit("value is not valid JSON: "), _snippet(text)),
        ),
        (F.col("_duplicate") != "", ErrorKind.DUPLICATE_FIELD, F.col("_duplicate")),
        (F.col("_missing") != "", ErrorKind.MISSING_FIELD, F.col("_missing")),
        (F.col("_mismatch") != "", ErrorKind.TYPE_MISMATCH, F.col("_mismatch")),
        (F.col("_confused") != "", ErrorKind.TYPE_MISMATCH, F.col("_confused")),
        *[
            (F.col(f"_{kind}") != "", kind, F.col(f"_{kind}"))
            for kind in PROFILE_KINDS
            if rules.policy(kind) == Policy.QUARANTINE
        ],
    ]  # fmt: skip
    error_kind = F.when(ok, F.lit(None).cast("string"))
    error_detail = F.when(ok, F.lit(None).cast("string"))
    for condition, kind, detail in verdicts:
        error_kind = error_kind.when(condition, F.lit(kind))
        error_detail = error_detail.when(condition, detail)
    return checked.select(
        *records.columns,
        "_typed",
        error_kind.alias("error_kind"),
        error_detail.alias("error_detail"),
        F.when(error_kind.isNull(), F.col("profile_flags")).alias("profile_flags"),
    )


def _key_columns(key: Column) -> list[Column]:
    """``key`` as text every reader can open, and its raw bytes when they are not UTF-8.

    A key that is not valid UTF-8 does not stop an otherwise valid event from being scored:
    its text has each invalid sequence replaced by U+FFFD, and ``key_bytes`` keeps the bytes.
    """
    text = key.cast("string")
    return [
        F.make_valid_utf8(text).alias("key"),
        F.when(~F.is_valid_utf8(text), key).alias("key_bytes"),
    ]


def valid_rows(judged: DataFrame, schema: EventSchema) -> DataFrame:
    """The records the model can score, as typed rows (see :class:`ParsedEvents`)."""
    return judged.where(F.col("error_kind").isNull()).select(
        F.col(f"_typed.{EVENT_ID}").alias(EVENT_ID),
        *_key_columns(F.col("key")),
        F.col(f"_typed.{EVENT_TIME}").alias(EVENT_TIME),
        *[F.col("_typed")[name].alias(name) for name in schema.names],
        "profile_flags",
        *_KAFKA_COORDINATES,
    )


QUARANTINE_COLUMNS = ("key", "value", *_KAFKA_COORDINATES, "error_kind", "error_detail")


def rejected_rows(judged: DataFrame) -> DataFrame:
    """The records to quarantine, raw, with their reason (see :class:`ParsedEvents`)."""
    return judged.where(F.col("error_kind").isNotNull()).select(*QUARANTINE_COLUMNS)


def parse_events(
    records: DataFrame,
    schema: EventSchema,
    rules: ParseRules | None = None,
    profile: DataProfile | None = None,
) -> ParsedEvents:
    """Split Kafka records (key, value, topic, partition, offset, timestamp) by whether they fit.

    A record fits when its value is UTF-8 JSON holding one object and nothing else, no field
    is given twice, every required feature is present (``null`` counts as present: a missing
    value for the model to impute), every present field has the signature's type, and its
    numbers are finite. With a profile, numbers outside the training range and categories
    unseen in training are flagged (or quarantined, as ``rules`` says). Never raises on
    record content.

    Returns:
        The valid rows and the quarantined rows, each lazily derived from ``records``.
    """
    judged = judge_events(records, schema, rules, profile)
    return ParsedEvents(valid=valid_rows(judged, schema), quarantined=rejected_rows(judged))
