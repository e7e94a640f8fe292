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
from pyspark.sql.types import DoubleType, FloatType, StringType

from infra.json_shape import (
    ABSENT,
    NULL,
    ONE_OBJECT,
    OTHER_VALUE,
    field_given,
    json_reason,
    json_shape,
    value_shape,
)
from infra.profile import DataProfile
from streaming.parse.schema import EVENT_ID, EVENT_TIME, EventSchema

__all__ = [
    "DEFAULT_MAX_VALUE_BYTES",
    "LANDING_KINDS",
    "PROFILE_KINDS",
    "RECORD_COLUMNS",
    "VERDICT_COLUMNS",
    "ErrorKind",
    "EventJudge",
    "JudgedEvents",
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
# A record's own columns that its quarantine row keeps, and that judging it again needs.
RECORD_COLUMNS = ("key", "value", *_KAFKA_COORDINATES)
# The columns :meth:`EventJudge.judge` adds to the records.
VERDICT_COLUMNS = ("_typed", "_shape", "_ok", "profile_flags")
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
    # Set by ``land`` on a record of the real-time query's output topics it cannot read back.
    MALFORMED_PREDICTION = "malformed_prediction"
    MALFORMED_DEAD_LETTER = "malformed_dead_letter"


class Policy:
    """What happens to an event that is well-formed but outside the training data's profile."""

    QUARANTINE = "quarantine"  # to the quarantine table, with the kind as error_kind
    FLAG = "flag"  # scored; the predictions row's profile_flags says why
    IGNORE = "ignore"  # scored, not flagged


PROFILE_KINDS = (ErrorKind.NON_FINITE, ErrorKind.OUT_OF_RANGE, ErrorKind.UNSEEN_CATEGORY)
# Kinds the event parse never gives: ``land`` sets them on the real-time topics' records.
LANDING_KINDS = (ErrorKind.MALFORMED_PREDICTION, ErrorKind.MALFORMED_DEAD_LETTER)
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


_REASON_TYPE = "struct<kind:string,detail:string>"
_TOMBSTONE = "record has no value (a tombstone: null value)"
_NOT_UTF8 = "value is not valid UTF-8"
# Jackson's lenient extras that no JSON producer should rely on are off: a single-quoted
# string is not JSON.
_STRICT = {"allowSingleQuotes": "false"}


def _any(conditions: list[Column]) -> Column:
    """True when any condition is true (nulls count as false)."""
    if not conditions:
        return F.lit(False)
    either = conditions[0]
    for condition in conditions[1:]:
        either = either | condition
    return F.coalesce(either, F.lit(False))


@dataclass(frozen=True)
class _Check:
    """One per-field test of a profile kind: when it fails, and what the detail says."""

    fails: Column
    detail: Column


def _is_non_finite(value: Column) -> Column:
    return F.isnan(value) | (F.abs(value) == F.lit(_INFINITY))


def _profile_checks(
    typed: Column, schema: EventSchema, profile: DataProfile | None
) -> dict[str, list[_Check]]:
    """Per profile kind, the per-field tests of a typed event.

    Plain column expressions, one per field (no higher-order functions), so that the projection
    every event goes through is compiled whole by Spark.
    """
    types = {f.name: f.dataType for f in schema.features.fields}
    floating = [n for n, t in types.items() if isinstance(t, DoubleType | FloatType)]
    ranges = {n: r for n, r in (profile.ranges() if profile else {}).items() if n in types}
    categories = {
        n: v
        for n, v in (profile.categories() if profile else {}).items()
        if isinstance(types.get(n), StringType)
    }

    def number(name: str) -> Column:
        return typed[name].cast("double")

    return {
        ErrorKind.NON_FINITE: [
            _Check(
                _is_non_finite(number(n)),
                F.concat(F.lit(f"field '{n}' is "), number(n).cast("string")),
            )
            for n in floating
        ],
        ErrorKind.OUT_OF_RANGE: [
            _Check(
                ~_is_non_finite(number(n)) & ((number(n) < lo) | (number(n) > hi)),
                F.concat(
                    F.lit(f"field '{n}' is "),
                    number(n).cast("string"),
                    F.lit(f", outside the training range [{lo!r}, {hi!r}]"),
                ),
            )
            for n, (lo, hi) in ranges.items()
        ],
        ErrorKind.UNSEEN_CATEGORY: [
            _Check(
                typed[n].isNotNull() & ~typed[n].isin(sorted(values)),
                F.concat(
                    F.lit(f"field '{n}' has '"), _snippet(typed[n]), F.lit("', unseen in training")
                ),
            )
            for n, values in categories.items()
        ],
    }


def _failing(checks: list[_Check]) -> Column:
    """The details of the failing checks, joined by ``; `` (``""`` when none fails)."""
    return F.concat_ws("; ", *[F.when(c.fails, c.detail) for c in checks])


def _flags(checks: dict[str, list[_Check]], kinds: list[str]) -> Column:
    """``KIND: detail; KIND: detail`` for the given kinds' failing checks, else null."""
    flags = [
        F.when(_any([c.fails for c in checks[k]]), F.concat(F.lit(f"{k}: "), _failing(checks[k])))
        for k in kinds
        if checks[k]
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


def _string_confusions(typed: Column, shape: Column, positions: dict[str, int]) -> list[_Check]:
    """String fields given a JSON number, boolean, object or array.

    Spark's JSON reader turns any token into a string field's text, so ``3`` and ``"3"`` both
    read as ``"3"``; the value's shape says how the field was given.
    """
    return [
        _Check(
            field_given(shape, position) == OTHER_VALUE,
            F.concat(F.lit(f"field '{n}' is not string: "), _snippet(typed[n])),
        )
        for n, position in positions.items()
    ]


@dataclass(frozen=True)
class JudgedEvents:
    """Kafka records with their verdict.

    Attributes:
        frame: The records' columns plus ``_typed`` (the value parsed against the signature),
            ``_shape`` (how the value and its fields are given), ``_ok`` (the model can score
            it) and ``profile_flags`` (why a scored record is outside the training profile,
            else null). Every column is a plain expression that Spark compiles whole: this is
            the projection every record goes through.
        rejection: ``struct<kind, detail>`` saying why a record is rejected; evaluate it only
            where ``_ok`` is false (it parses the value again to say what is wrong).
        schema: The signature the records were judged against.
    """

    frame: DataFrame
    rejection: Column
    schema: EventSchema
    valid_columns: tuple[Column, ...] = ()

    def rejected_record(self) -> Column:
        """A rejected record as a ``REJECTED_SCHEMA`` struct; null for a record that is ok."""
        return F.when(
            ~F.col("_ok"),
            F.struct(
                *RECORD_COLUMNS,
                self.rejection["kind"].alias("error_kind"),
                self.rejection["detail"].alias("error_detail"),
            ),
        )


class EventJudge:
    """Judges Kafka records against one model's signature, rules and training profile.

    Every column expression is built once, here: a micro-batch only applies them (two
    projections), so the per-batch cost on the driver does not grow with the number of
    checks. Build one per model version and reuse it for every batch it scores.

    A record is ok when its value is UTF-8 JSON holding one object and nothing after it, no
    field is given twice, every required feature is present (``null`` counts as present: a
    missing value for the model to impute), every present field has the signature's type
    (string fields given as JSON strings), and no profile check whose policy is
    ``quarantine`` fails (by default: numbers must be finite).

    The value is parsed once, typed, and its shape is read once in the JVM
    (:func:`infra.json_shape.json_shape`: one object and nothing after it, no key twice, how
    each field is given). A field that comes out null must be given as ``null`` (required) or
    be absent or ``null`` (optional), else it had the wrong type. Never raises on record
    content.
    """

    def __init__(
        self,
        schema: EventSchema,
        rules: ParseRules | None = None,
        profile: DataProfile | None = None,
    ) -> None:
        rules = rules or ParseRules()
        self.schema = schema
        max_bytes = rules.max_value_bytes
        json_schema = schema.json_schema()
        text = F.col("value").cast("string")
        fits = F.octet_length(F.col("value")) <= max_bytes
        names = [f.name for f in json_schema.fields]
        self._parse = [
            F.when(fits, F.from_json(text, json_schema, _STRICT)).alias("_typed"),
            F.when(fits, json_shape(F.col("value"), names)).alias("_shape"),
        ]
        t, shape = F.col("_typed"), F.col("_shape")
        strings = {
            f.name: names.index(f.name)
            for f in schema.features.fields
            if isinstance(f.dataType, StringType)
        }
        checks = _profile_checks(t, schema, profile)
        confusions = _string_confusions(t, shape, strings)
        quarantined_kinds = [k for k in PROFILE_KINDS if rules.policy(k) == Policy.QUARANTINE]
        ok = (
            t.isNotNull()
            & (value_shape(shape) == ONE_OBJECT)
            & F.is_valid_utf8(text)
            & ~_any([c.fails for c in confusions])
            & ~_any([c.fails for k in quarantined_kinds for c in checks[k]])
        )
        for position, name in enumerate(names):
            given = field_given(shape, position)
            allowed = given == NULL if name in schema.required else given.isin(NULL, ABSENT)
            ok = ok & (t[name].isNotNull() | allowed)
        flagged = [k for k in PROFILE_KINDS if rules.policy(k) == Policy.FLAG]
        self._verdict = [
            F.col("_typed"),
            F.col("_shape"),
            F.coalesce(ok, F.lit(False)).alias("_ok"),
            _flags(checks, flagged).alias("profile_flags"),
        ]
        self.rejection = _rejection(_Grounds(schema, rules, checks, confusions, text, max_bytes))
        self.valid_columns = [
            F.col(f"_typed.{EVENT_ID}").alias(EVENT_ID),
            *_key_columns(F.col("key")),
            F.col(f"_typed.{EVENT_TIME}").alias(EVENT_TIME),
            *[F.col("_typed")[name].alias(name) for name in schema.names],
            F.col("profile_flags"),
            *[F.col(c) for c in _KAFKA_COORDINATES],
        ]

    def judge(self, records: DataFrame) -> JudgedEvents:
        """Judge ``records`` (key, value, topic, partition, offset, timestamp, ...): add the
        columns of :data:`VERDICT_COLUMNS`.

        Every column is a projection Spark compiles. A rejected record's reason is not among
        them: it is worked out where the rejected records are read
        (:meth:`JudgedEvents.rejected_record`), so that the plan every record goes through
        does not carry it. This is the plan a streaming query can carry, analysed once when
        the query starts.
        """
        kept = [F.col(c) for c in records.columns]
        frame = records.select(*kept, *self._parse).select(*kept, *self._verdict)
        return self.judged(frame)

    def rejected(self, records: DataFrame) -> DataFrame:
        """``records`` that a judgement rejected already (a batch's pass gathered them), as
        rows of ``REJECTED_SCHEMA`` with their reasons: the value is parsed again, and only
        what the reason reads is worked out (:func:`rejected_rows`)."""
        kept = [F.col(c) for c in RECORD_COLUMNS]
        parsed = records.select(*kept, *self._parse, F.lit(False).alias("_ok"))
        return rejected_rows(self.judged(parsed))

    def judged(self, frame: DataFrame) -> JudgedEvents:
        """``frame``, records this judge has judged already, with the judge's verdict columns."""
        return JudgedEvents(
            frame=frame,
            rejection=self.rejection,
            schema=self.schema,
            valid_columns=tuple(self.valid_columns),
        )


def judge_events(
    records: DataFrame,
    schema: EventSchema,
    rules: ParseRules | None = None,
    profile: DataProfile | None = None,
) -> JudgedEvents:
    """Judge every Kafka record, in one pass over the values (see :class:`EventJudge`)."""
    return EventJudge(schema, rules, profile).judge(records)


@dataclass(frozen=True)
class _Grounds:
    """What a rejection's reason is worked out from, besides the record itself."""

    schema: EventSchema
    rules: ParseRules
    checks: dict[str, list[_Check]]
    confusions: list[_Check]
    text: Column
    max_bytes: int


def _reason(kind: str, detail: Column) -> Column:
    return F.struct(F.lit(kind).alias("kind"), detail.alias("detail"))


def _rejection(grounds: _Grounds) -> Column:
    """Why a record was rejected: the first kind that applies, with a detail naming the field
    and the value. For rejected records only: the value's form is read again, in the JVM
    (:func:`infra.json_shape.json_reason`), and the typed checks are looked at again."""
    schema, rules, checks = grounds.schema, grounds.rules, grounds.checks
    text, max_bytes = grounds.text, grounds.max_bytes
    value = F.col("value")
    size = F.octet_length(value)
    # What the value's bytes are, before it is read as JSON.
    raw = (
        F.when(value.isNull(), _reason(ErrorKind.TOMBSTONE, F.lit(_TOMBSTONE)))
        .when(size == 0, _reason(ErrorKind.EMPTY_VALUE, F.lit("value is empty (zero bytes)")))
        .when(
            size > max_bytes,
            _reason(
                ErrorKind.OVERSIZED,
                F.format_string(
                    "value has %d bytes, more than the %d allowed", size, F.lit(max_bytes)
                ),
            ),
        )
        .when(~F.is_valid_utf8(text), _reason(ErrorKind.INVALID_UTF8, F.lit(_NOT_UTF8)))
        .when(
            F.regexp_like(text, F.lit(r"^\s*$")),
            _reason(
                ErrorKind.EMPTY_VALUE,
                F.format_string("value holds only whitespace (%d bytes)", size),
            ),
        )
    )
    # Its structure, keys and field types, read by the JSON tokenizer.
    fields = schema.json_schema().fields
    typed = F.col("_typed")
    untyped = F.concat(*[F.when(typed[f.name].isNull(), "1").otherwise("0") for f in fields])
    form = json_reason(
        value,
        untyped,
        [(f.name, f.dataType.simpleString(), f.name in schema.required) for f in fields],
        _DEEP_NESTING,
    )
    # What the typed values say: a string field given another value, a profile check whose
    # policy is to quarantine.
    typed_checks = [
        (grounds.confusions, ErrorKind.TYPE_MISMATCH),
        *[(checks[k], k) for k in PROFILE_KINDS if rules.policy(k) == Policy.QUARANTINE],
    ]
    values = F.when(F.lit(False), F.lit(None).cast(_REASON_TYPE))
    for kind_checks, kind in typed_checks:
        values = values.when(
            _any([c.fails for c in kind_checks]), _reason(kind, _failing(kind_checks))
        )
    # Never reached by the cases above; a record is never rejected without a reason.
    fallback = _reason(
        ErrorKind.MALFORMED_JSON,
        F.concat(F.lit("value was not accepted: "), F.coalesce(_snippet(text), F.lit(""))),
    )
    return F.coalesce(raw, form, values, fallback)


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


def valid_rows(judged: JudgedEvents) -> DataFrame:
    """The records the model can score, as typed rows (see :class:`ParsedEvents`)."""
    return judged.frame.where(F.col("_ok")).select(*judged.valid_columns)


def rejected_rows(judged: JudgedEvents) -> DataFrame:
    """The records to quarantine, raw, with their reason (see :class:`ParsedEvents`)."""
    rejected = judged.rejected_record().alias("_rejected")
    return judged.frame.where(~F.col("_ok")).select(rejected).select("_rejected.*")


def parse_events(
    records: DataFrame,
    schema: EventSchema,
    rules: ParseRules | None = None,
    profile: DataProfile | None = None,
) -> ParsedEvents:
    """Split Kafka records (key, value, topic, partition, offset, timestamp) by whether they fit
    (see :func:`judge_events`). Never raises on record content.

    Returns:
        The valid rows and the quarantined rows, each lazily derived from ``records``.
    """
    judged = judge_events(records, schema, rules, profile)
    return ParsedEvents(valid=valid_rows(judged), quarantined=rejected_rows(judged))
