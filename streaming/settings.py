"""One frozen, typed settings object per command of ``python -m streaming``.

Built once at the edge (:mod:`streaming.cli`) from flags, ``STREAMING_*`` environment variables
and an optional TOML file (see :mod:`infra.settings`), then passed down.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from infra.settings import ProjectCommand, TrackingCommand, key_value_pairs
from streaming.errors import ConfigurationError
from streaming.parse.events import DEFAULT_MAX_VALUE_BYTES, ParseRules

__all__ = [
    "DEFAULT_CHECKPOINT_INTERVAL",
    "BatchSettings",
    "InputFormat",
    "KafkaClientSettings",
    "LandSettings",
    "MetricsCommand",
    "MicroBatchQueryCommand",
    "ParseCommand",
    "ProduceSettings",
    "QueryCommand",
    "RealTimeSettings",
    "ReportSettings",
    "ServiceSettings",
    "SparkCommand",
    "StatusSettings",
    "StreamingCommand",
    "Trigger",
    "VerifySettings",
    "check_starting_offsets",
    "interval_seconds",
    "is_secret_option",
    "parse_since",
    "parse_trigger",
    "plain_kafka_options",
]

_INTERVAL = re.compile(r"^(\d+)\s*(ms|s|sec|seconds|m|min|minutes)$")
_SECRET_KEY = re.compile(r"(password|secret|jaas|token)", re.IGNORECASE)
_QUERY_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_DURATION = re.compile(
    r"^\s*\d+\s*(milliseconds?|ms|seconds?|s|minutes?|min|hours?|h|days?|d)\s*$", re.IGNORECASE
)
_SPAN = re.compile(r"^\s*(\d+)\s*(s|m|min|h|d|w)\s*$", re.IGNORECASE)
_SPAN_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# What ``produce --input`` replays.
InputFormat = Literal["jsonl", "csv", "parquet", "delta"]
# A backlog is drained in batches of at most this many records: the first rows land within
# seconds, and a batch's rejected records (gathered on the driver) stay bounded.
DEFAULT_MAX_OFFSETS_PER_TRIGGER = 100_000


@dataclass(frozen=True)
class Trigger:
    """When micro-batches run: every ``interval``, or once over what is available now."""

    interval: str | None = "5 seconds"
    available_now: bool = False

    def as_kwargs(self) -> dict[str, object]:
        """Keyword arguments for ``DataStreamWriter.trigger``."""
        if self.available_now:
            return {"availableNow": True}
        return {"processingTime": self.interval}


def parse_trigger(text: str) -> Trigger:
    """Parse ``5s``, ``500ms``, ``1m`` or ``available-now``.

    Spark's ``once`` trigger is deprecated and differs from ``available-now`` (one batch, no
    cap), so it is not accepted.

    Raises:
        ValueError: the text is neither an interval nor ``available-now``.
    """
    cleaned = text.strip().lower()
    if cleaned in {"available-now", "availablenow", "available_now"}:
        return Trigger(interval=None, available_now=True)
    match = _INTERVAL.match(cleaned)
    if match is None:
        raise ValueError("is not understood: use an interval like 5s, 500ms, 1m, or available-now")
    amount, unit = int(match.group(1)), match.group(2)
    name = {"ms": "milliseconds", "m": "minutes", "min": "minutes", "minutes": "minutes"}.get(
        unit, "seconds"
    )
    return Trigger(interval=f"{amount} {name}")


def parse_since(text: str) -> timedelta:
    """Parse a time span like ``90s``, ``30m``, ``24h``, ``7d`` or ``2w``.

    Raises:
        ValueError: the text is not a positive number followed by s, m, h, d or w.
    """
    match = _SPAN.match(text)
    if match is None or int(match.group(1)) == 0:
        raise ValueError("is not a time span: use e.g. 30m, 24h, 7d")
    return timedelta(seconds=int(match.group(1)) * _SPAN_SECONDS[match.group(2).lower()])


def _utc(value: datetime) -> datetime:
    """A time in UTC; one without an offset is taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def check_starting_offsets(text: str, topics: tuple[str, ...]) -> None:
    """Check ``--starting-offsets`` the way Spark would only in the first batch.

    ``earliest``, ``latest``, or JSON ``{"topic": {"0": 23, "1": -2}}`` where -2 means earliest
    and -1 latest, naming only subscribed topics (any topic with ``--topic-pattern``).

    Raises:
        ValueError: one line saying what is wrong.
    """
    if text.strip().lower() in {"earliest", "latest"}:
        return
    prefix = f"--starting-offsets {text[:60]!r}"
    try:
        offsets = json.loads(text)
    except ValueError:
        raise ValueError(
            f'{prefix} is neither earliest, latest nor JSON like {{"topic": {{"0": 23, "1": -2}}}}'
        ) from None
    if not isinstance(offsets, dict) or not offsets:
        raise ValueError(f"{prefix} must be a JSON object of topics")
    for topic, partitions in offsets.items():
        if topics and topic not in topics:
            raise ValueError(
                f"{prefix} names topic {topic!r}, which the query does not read "
                f"(it reads {', '.join(topics)})"
            )
        if not isinstance(partitions, dict) or not partitions:
            raise ValueError(f"{prefix}: topic {topic!r} needs an object of partition: offset")
        for partition, offset in partitions.items():
            if not str(partition).isdigit():
                raise ValueError(f"{prefix}: partition {partition!r} is not a number")
            if isinstance(offset, bool) or not isinstance(offset, int) or offset < -2:
                raise ValueError(
                    f"{prefix}: offset {offset!r} of {topic}/{partition} must be an offset, "
                    "-2 (earliest) or -1 (latest)"
                )


def is_secret_option(key: str) -> bool:
    """Whether a Kafka option holds a credential (passwords, JAAS config, tokens)."""
    return bool(_SECRET_KEY.search(key))


def plain_kafka_options(options: Mapping[str, str | SecretStr]) -> dict[str, str]:
    """The options with secrets unwrapped: only for handing to a Kafka client, never to log."""
    return {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in options.items()}


class StreamingCommand(ProjectCommand):
    """Options every ``python -m streaming`` command has."""

    model_config = SettingsConfigDict(env_prefix="STREAMING_")

    log_format: Literal["text", "json"] = Field(
        "text", description="text, or json (one JSON object per log line)"
    )
    verbose: bool = Field(
        False,
        description="show Spark's own start-up output and logs on the terminal (by default they "
        "go to .local/logs/spark.log under the home)",
    )


class KafkaClientSettings(StreamingCommand):
    """Options of a command that talks to Kafka.

    ``kafka_options`` are Kafka client settings (``kafka.KEY``), passed through to Spark's Kafka
    source and to the project's own Kafka clients; those holding credentials are ``SecretStr``.
    """

    bootstrap_servers: str = Field(description="Kafka HOST:PORT[,HOST:PORT]")
    kafka_options: dict[str, str | SecretStr] = Field(
        default_factory=dict,
        description="Kafka client option kafka.KEY=VALUE, repeatable "
        "[env STREAMING_KAFKA_<KEY>, e.g. STREAMING_KAFKA_SASL_JAAS_CONFIG]",
        json_schema_extra={"flag": "--kafka-option", "repeatable": True},
    )

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers_given(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("is empty: give HOST:PORT[,HOST:PORT]")
        return value.strip() if value is not None else None

    @field_validator("kafka_options", mode="before")
    @classmethod
    def _kafka_pairs(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            value = key_value_pairs(value, "--kafka-option")
        return value

    @field_validator("kafka_options")
    @classmethod
    def _keep_secrets(cls, value: dict[str, str | SecretStr]) -> dict[str, str | SecretStr]:
        return {
            k: SecretStr(v) if isinstance(v, str) and is_secret_option(k) else v
            for k, v in value.items()
        }

    @property
    def kafka_client_options(self) -> dict[str, str]:
        """``kafka.*`` options without the prefix, secrets unwrapped (for a Kafka client)."""
        return {
            k.removeprefix("kafka."): v
            for k, v in plain_kafka_options(self.kafka_options).items()
            if k.startswith("kafka.")
        }


class SparkSessionCommand(StreamingCommand):
    """Options of a command that starts Spark."""

    master: str | None = Field(
        None, description="Spark master when not under spark-submit (default local[*])"
    )
    conf: dict[str, str] = Field(
        default_factory=dict,
        description="Spark setting spark.KEY=VALUE, repeatable",
        json_schema_extra={"repeatable": True, "metavar": "spark.KEY=VALUE"},
    )
    spark_log_level: str = Field("WARN", description="log level of Spark's own (JVM) logs")

    @property
    def jvm_output(self) -> Path | None:
        """Where the Spark JVM's own output goes: the terminal when verbose, else a log file."""
        return None if self.verbose else self.project_home.local / "logs" / "spark.log"

    @field_validator("conf", mode="before")
    @classmethod
    def _conf_pairs(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return key_value_pairs(value, "--conf")
        return value


class SparkCommand(SparkSessionCommand, TrackingCommand):
    """Options of a command that starts Spark and opens the MLflow store."""

    model_config = SettingsConfigDict(env_prefix="STREAMING_")


class ParseCommand(StreamingCommand):
    """Options of a command that judges Kafka records as the service does."""

    max_value_bytes: int = Field(
        DEFAULT_MAX_VALUE_BYTES,
        gt=0,
        description="a larger Kafka value is quarantined as oversized, without being parsed",
    )
    profile_policy: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="what happens to an event outside the training data's profile, "
        "KIND=quarantine|flag|ignore, repeatable; kinds: non_finite (default quarantine), "
        "out_of_range and unseen_category (default flag) "
        "[env STREAMING_PROFILE_POLICY=KIND=POLICY,KIND=POLICY]",
        json_schema_extra={"repeatable": True, "metavar": "KIND=POLICY"},
    )

    @field_validator("profile_policy", mode="before")
    @classmethod
    def _policy_pairs(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [item for item in value.split(",") if item.strip()]
        if isinstance(value, list | tuple):
            value = key_value_pairs(value, "--profile-policy")
        return value

    @field_validator("profile_policy")
    @classmethod
    def _policies(cls, value: dict[str, str]) -> dict[str, str]:
        try:
            ParseRules(policies=value)
        except ValueError as e:
            raise ValueError(str(e)) from None
        return value

    @property
    def parse_rules(self) -> ParseRules:
        """How records are judged: the value size limit and the profile policies."""
        return ParseRules(max_value_bytes=self.max_value_bytes, policies=self.profile_policy)


class QueryCommand(StreamingCommand):
    """A command that runs a named, checkpointed streaming query (each sets its default name)."""

    checkpoint: str | None = Field(
        None, description="checkpoint folder (default: checkpoints/<query name> under the home)"
    )
    query_name: str = Field("query", description="query name")

    @field_validator("query_name")
    @classmethod
    def _query_name(cls, value: str) -> str:
        if not _QUERY_NAME.match(value):
            raise ValueError("may hold only letters, digits, '.', '_', '-'")
        return value

    @property
    def checkpoint_dir(self) -> str:
        """The query's checkpoint: ``checkpoints/<query name>`` under the home unless given."""
        return self.checkpoint or str(self.project_home.checkpoints / self.query_name)


class MicroBatchQueryCommand(QueryCommand):
    """A checkpointed query that reads Kafka in micro-batches."""

    trigger: Annotated[Trigger, NoDecode] = Field(
        default_factory=Trigger,
        description="interval (5s, 500ms, 1m) or available-now (default 5s)",
    )
    starting_offsets: str = Field("earliest", description="earliest, latest, or Spark's JSON form")
    max_offsets_per_trigger: int = Field(
        DEFAULT_MAX_OFFSETS_PER_TRIGGER,
        gt=0,
        description="cap on records per micro-batch, so a backlog is read in bounded batches",
    )

    @field_validator("trigger", mode="before")
    @classmethod
    def _trigger(cls, value: Any) -> Any:
        return parse_trigger(value) if isinstance(value, str) else value


class MetricsCommand(StreamingCommand):
    """A long-running command that can serve its figures to Prometheus."""

    metrics_port: int | None = Field(None, description="serve Prometheus /metrics on this port")
    metrics_host: str = Field(
        "127.0.0.1", description="address /metrics binds (0.0.0.0 for every interface)"
    )


class ServiceSettings(
    KafkaClientSettings, SparkCommand, ParseCommand, MicroBatchQueryCommand, MetricsCommand
):
    """Everything the streaming service (``run``) needs, validated at start."""

    model_uri: str = Field(
        description="models:/NAME@ALIAS (followed), models:/NAME/VERSION, or any MLflow model URI"
    )
    predictions_table: str = Field(description="Delta table path of predictions")
    quarantine_table: str = Field(description="Delta table path of quarantined records")
    topic: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="topic name(s), comma-separated"
    )
    topic_pattern: str | None = Field(
        None, description="subscribe to the topics matching this Java regex"
    )
    query_name: str = Field(
        "inference", description="query name; also the Delta txnAppId of its writes"
    )
    on_data_loss: Literal["fail", "skip"] = Field(
        "fail",
        description="records deleted by retention before they were read: fail (stop the "
        "query, exit 1) or skip them, logging and counting each skipped offset range",
    )
    model_poll_seconds: float = Field(
        30.0, ge=0, description="how often the model alias is looked up, in seconds"
    )
    dedup_watermark: str | None = Field(
        None, description="drop a repeated event_id within this much time, e.g. '10 minutes'"
    )
    compact_every: int | None = Field(
        None,
        gt=0,
        description="compact both tables (Delta OPTIMIZE) in the background after every N "
        "batches that wrote rows; the stream keeps running meanwhile (default: never)",
    )

    @field_validator("topic", mode="before")
    @classmethod
    def _topic_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(t.strip() for t in value.split(",") if t.strip())
        return value

    @field_validator("topic")
    @classmethod
    def _topic_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _TOPIC_NAME.match(name):
                raise ValueError(
                    f"has {name!r}, which is not a Kafka topic name "
                    "(letters, digits, '.', '_', '-'; at most 249)"
                )
        return value

    @field_validator("topic_pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as e:
                raise ValueError(f"is not a regular expression: {e}") from None
        return value

    @field_validator("dedup_watermark")
    @classmethod
    def _watermark(cls, value: str | None) -> str | None:
        if value is not None and not _DURATION.match(value):
            raise ValueError("is not a duration: use e.g. '10 minutes', '30 seconds', '1 hour'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ServiceSettings:
        if bool(self.topic) == bool(self.topic_pattern):
            raise ValueError("give exactly one of --topic NAME[,NAME] or --topic-pattern")
        check_starting_offsets(self.starting_offsets, self.topic)
        if self.predictions_table.rstrip("/") == self.quarantine_table.rstrip("/"):
            raise ValueError("--predictions-table and --quarantine-table must differ")
        return self

    @property
    def topics(self) -> tuple[str, ...]:
        return self.topic

    @property
    def app_id(self) -> str:
        """Delta ``txnAppId`` of this query's writes, stable across restarts of one query."""
        return f"streaming-inference:{self.query_name}"


class LandSettings(KafkaClientSettings, SparkSessionCommand, MicroBatchQueryCommand):
    """``land``: land the real-time query's predictions and dead-letter topics into the
    predictions and quarantine tables, every source record once."""

    predictions_topic: str = Field(description="topic of the real-time query's predictions")
    dead_letter_topic: str = Field(description="topic of the real-time query's dead letters")
    predictions_table: str = Field(description="Delta table path of predictions")
    quarantine_table: str = Field(description="Delta table path of quarantined records")
    query_name: str = Field("landing", description="query name")

    @field_validator("predictions_topic", "dead_letter_topic")
    @classmethod
    def _topic_names(cls, value: str) -> str:
        return _topic_name(value)

    @model_validator(mode="after")
    def _consistent(self) -> LandSettings:
        if self.predictions_topic == self.dead_letter_topic:
            raise ValueError("--predictions-topic and --dead-letter-topic must differ")
        check_starting_offsets(self.starting_offsets, self.topics)
        if self.predictions_table.rstrip("/") == self.quarantine_table.rstrip("/"):
            raise ValueError("--predictions-table and --quarantine-table must differ")
        return self

    @property
    def topics(self) -> tuple[str, ...]:
        return (self.predictions_topic, self.dead_letter_topic)

    @property
    def app_id(self) -> str:
        """Writer id recorded with each landing commit, stable across restarts."""
        return f"streaming-landing:{self.query_name}"


def _topic_name(value: str) -> str:
    if not _TOPIC_NAME.match(value):
        raise ValueError("is not a Kafka topic name (letters, digits, '.', '_', '-'; at most 249)")
    return value


# Spark's spark.sql.streaming.realTimeMode.minBatchDuration (5000 ms by default).
_MIN_CHECKPOINT_INTERVAL_S = 5.0
# Each checkpoint pauses scoring: at 5,000 events/s on 2 cores, 3,700-16,000 records waited
# 50 ms to 1.6 s. Over one minute that is 2-3% or more of the records, and the p99 is the pause
# (~600 ms); over five minutes it is 0.5-1.1%, and the p99 was 16, 139 and 398 ms in three runs.
# Spark's own default too: Trigger.RealTime() with no duration (Spark 4.2).
DEFAULT_CHECKPOINT_INTERVAL = "5 minutes"
_SECONDS_PER = {"milliseconds": 0.001, "seconds": 1.0, "minutes": 60.0}


def interval_seconds(interval: str) -> float:
    """Seconds in Spark's ``5 seconds`` / ``500 milliseconds`` / ``1 minutes`` form."""
    amount, unit = interval.split()
    return float(amount) * _SECONDS_PER[unit]


def parse_checkpoint_interval(text: str) -> str:
    """Parse ``5s``, ``30s``, ``1m`` into Spark's ``5 seconds`` form.

    Raises:
        ValueError: the text is not an interval, or is below Real-Time Mode's 5 seconds.
    """
    trigger = parse_trigger(text)
    if trigger.interval is None:
        raise ValueError("is not an interval: use e.g. 5s, 30s, 1m")
    if interval_seconds(trigger.interval) < _MIN_CHECKPOINT_INTERVAL_S:
        raise ValueError(
            "is below Real-Time Mode's minimum of 5s (it is how often progress is "
            "checkpointed, not a latency: records are scored as they arrive)"
        )
    return trigger.interval


class RealTimeSettings(
    KafkaClientSettings, SparkCommand, ParseCommand, QueryCommand, MetricsCommand
):
    """``realtime``: score events in Spark's Real-Time Mode, Kafka topic to Kafka topics."""

    model_uri: str = Field(
        description="models:/NAME@ALIAS (followed: a new version restarts the query from its "
        "checkpoint), models:/NAME/VERSION, or any MLflow URI of an MLlib model"
    )
    topic: str = Field(description="topic of the events")
    predictions_topic: str = Field(description="topic the predictions are written to (JSON)")
    dead_letter_topic: str = Field(
        description="topic the records that fail the parse are written to, unchanged, with "
        "error_kind, error_detail and their source coordinates as headers"
    )
    query_name: str = Field("realtime", description="query name")
    checkpoint_interval: str = Field(
        DEFAULT_CHECKPOINT_INTERVAL,
        description="how often the query records its progress in the checkpoint (5s, 30s, "
        "5m; Spark's minimum is 5s); not a latency: records are scored as they arrive, but "
        "each checkpoint pauses scoring for up to a second, a new model version waits for the "
        "next one, and after a restart the records read since the last one are written again",
    )
    starting_offsets: str = Field(
        "earliest", description="where a new checkpoint starts: earliest, latest, or Spark's JSON"
    )
    on_data_loss: Literal["fail", "skip"] = Field(
        "fail",
        description="records deleted by retention before they were read: fail (stop the "
        "query, exit 1) or skip them",
    )
    model_poll_seconds: float = Field(
        30.0,
        gt=0,
        description="how often the model alias is looked up, in seconds; a new version is "
        "loaded and checked beside the query, which then restarts with it",
    )

    @field_validator("topic", "predictions_topic", "dead_letter_topic")
    @classmethod
    def _topic_names(cls, value: str) -> str:
        return _topic_name(value)

    @field_validator("checkpoint_interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        return parse_checkpoint_interval(value)

    @model_validator(mode="after")
    def _consistent(self) -> RealTimeSettings:
        check_starting_offsets(self.starting_offsets, (self.topic,))
        named = [self.topic, self.predictions_topic, self.dead_letter_topic]
        if len(set(named)) < len(named):
            raise ValueError("--topic, --predictions-topic and --dead-letter-topic must differ")
        return self


class BatchSettings(SparkCommand):
    """``batch``: score a table with a registered model into the predictions table."""

    input: str = Field(description="input table path (Delta, Parquet or CSV)")
    input_format: Literal["delta", "parquet", "csv"] | None = Field(
        None, description="input format (default: guessed from the path)"
    )
    model_uri: str = Field(description="models:/NAME@ALIAS, models:/NAME/VERSION, or any URI")
    predictions_table: str = Field(description="Delta table path of predictions")


class VerifySettings(KafkaClientSettings, SparkCommand, ParseCommand):
    """``verify``: every offset of a topic landed once in the two tables, and every
    prediction is reproduced by its row's model version."""

    topic: str = Field(description="topic whose records are checked")
    predictions_table: str = Field(description="Delta table path of predictions")
    quarantine_table: str = Field(description="Delta table path of quarantined records")
    skip_rescore: bool = Field(
        False, description="check offsets only, without scoring the predictions again"
    )
    output: Literal["text", "json"] = Field("text", description="text for people, or json")


class StatusSettings(KafkaClientSettings):
    """``status``: lag per partition, last batch and model version of a query."""

    bootstrap_servers: str | None = Field(  # type: ignore[assignment]
        None, description="Kafka HOST:PORT[,HOST:PORT], for the lag per partition"
    )
    checkpoint: str | None = Field(
        None, description="checkpoint folder (default: checkpoints/<query name> under the home)"
    )
    query_name: str = Field("inference", description="query name")
    predictions_table: str | None = Field(
        None, description="Delta table path of predictions, for the last batch's figures"
    )
    quarantine_table: str | None = Field(
        None, description="Delta table path of the quarantine, for its counts by error kind"
    )
    output: Literal["text", "json"] = Field("text", description="text for people, or json")
    max_lag: int | None = Field(
        None, ge=0, description="exit 1 when more records than this wait, over all partitions"
    )
    max_stall_seconds: float | None = Field(
        300.0,
        gt=0,
        description="exit 1 when a record has waited unread longer than this (by its Kafka "
        "timestamp; needs --bootstrap-servers)",
    )

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.checkpoint or self.project_home.checkpoints / self.query_name)


class TailSettings(StreamingCommand):
    """``tail``: the newest rows of the predictions or quarantine table, without Spark."""

    table: str = Field(description="Delta table path (the predictions or quarantine table)")
    rows: int = Field(10, gt=0, description="how many of the newest rows to show")
    follow: bool = Field(False, description="keep showing the rows of new batches (Ctrl-C ends)")
    poll_seconds: float = Field(1.0, gt=0, description="how often --follow looks for commits")
    output: Literal["text", "json"] = Field(
        "text", description="text (tab-separated) or json (one object per row)"
    )


class CompactSettings(SparkSessionCommand):
    """``compact``: rewrite a table's small files into fewer large ones (Delta OPTIMIZE)."""

    table: str = Field(description="Delta table path (the predictions or quarantine table)")
    where: str | None = Field(
        None,
        description="only partitions matching this predicate on partition columns, e.g. "
        "\"event_date = '2026-11-26'\"",
    )


class VacuumSettings(StreamingCommand):
    """``vacuum``: delete data files the table no longer references (Delta VACUUM, delta-rs)."""

    table: str = Field(description="Delta table path (the predictions or quarantine table)")
    retain_hours: int = Field(
        168,
        ge=168,
        description="keep files unreferenced for less than this; at least 168 (7 days), so "
        "that readers and restarts of a running query never lose a file they still need",
    )


class ReportSettings(StreamingCommand):
    """``report``: throughput, latency, quarantine and model versions over a time window, read
    from the two tables without Spark, as a PNG and a short text summary."""

    predictions_table: str = Field(description="Delta table path of predictions")
    quarantine_table: str = Field(description="Delta table path of quarantined records")
    since: str | None = Field(
        None,
        description="the window is this span up to --until: 30m, 24h, 7d (default 24h, "
        "unless --from is given)",
        json_schema_extra={"metavar": "SPAN"},
    )
    from_time: datetime | None = Field(
        None,
        description="start of the window, ISO 8601 like 2026-11-26T12:00 (UTC unless it "
        "names an offset)",
        json_schema_extra={"flag": "--from", "metavar": "TIME"},
    )
    until: datetime | None = Field(
        None,
        description="end of the window, ISO 8601 (default: now)",
        json_schema_extra={"metavar": "TIME"},
    )
    output: Path = Field(
        Path("report.png"), description="PNG file to write", json_schema_extra={"metavar": "PNG"}
    )

    @field_validator("since")
    @classmethod
    def _span(cls, value: str | None) -> str | None:
        if value is not None:
            parse_since(value)
        return value

    @field_validator("from_time", "until", mode="before")
    @classmethod
    def _iso_time(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.strip())
            except ValueError:
                raise ValueError(
                    "is not an ISO 8601 time: use e.g. 2026-11-26T12:00 or 2026-11-26T12:00+01:00"
                ) from None
        return value

    @model_validator(mode="after")
    def _one_window(self) -> ReportSettings:
        if self.since is not None and self.from_time is not None:
            raise ValueError("give --since or --from, not both")
        if (
            self.from_time is not None
            and self.until is not None
            and _utc(self.from_time) >= _utc(self.until)
        ):
            raise ValueError("--from must be before --until")
        return self

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """The window's start and end in UTC; ``now`` ends it unless ``--until`` does.

        Raises:
            ConfigurationError: ``--from`` is not before the end (now, without ``--until``).
        """
        end = _utc(self.until) if self.until is not None else _utc(now)
        if self.from_time is not None:
            start = _utc(self.from_time)
            if start >= end:
                raise ConfigurationError(
                    f"--from {start.isoformat()} is not before the end of the window, "
                    f"{end.isoformat()}"
                )
            return start, end
        return end - parse_since(self.since or "24h"), end


class ProduceSettings(KafkaClientSettings):
    """``produce``: send events to a topic, replayed from a file or synthetic, at a target rate."""

    topic: str = Field(description="topic to send to")
    input: Path | None = Field(
        None,
        description="file or table to replay: JSON lines (one event per line, sent as it is), "
        "CSV, Parquet, or a Delta table folder (each row an event)",
    )
    input_format: InputFormat | None = Field(
        None,
        description="format of --input (default: from the name, *.jsonl/*.ndjson/*.json, "
        "*.csv, *.parquet, or a folder's _delta_log or files)",
    )
    synthetic: int | None = Field(
        None, gt=0, description="send this many synthetic listing events instead of --input"
    )
    key_field: str | None = Field(
        None,
        description="field of each event whose value becomes the Kafka key (synthetic "
        "events: default id, the listing id)",
    )
    rate: float | None = Field(
        None, gt=0, description="events per second (default: as fast as the broker takes them)"
    )
    malformed_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of the events replaced by malformed ones, e.g. 0.01: in turn "
        "truncated JSON, numbers sent as text, bytes that are not UTF-8",
    )
    seed: int = Field(
        7, description="seed of the synthetic listings and of where malformed events fall"
    )
    create_topic: bool = Field(False, description="create the topic when it does not exist")
    partitions: int = Field(1, gt=0, description="partitions of a topic --create-topic creates")
    replication_factor: int = Field(
        1, gt=0, description="replication factor of a topic --create-topic creates"
    )
    output: Literal["text", "json"] = Field(
        "text", description="the final report as text for people, or json"
    )

    @field_validator("topic")
    @classmethod
    def _topic_name(cls, value: str) -> str:
        if not _TOPIC_NAME.match(value):
            raise ValueError(
                "is not a Kafka topic name (letters, digits, '.', '_', '-'; at most 249)"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ProduceSettings:
        if (self.input is None) == (self.synthetic is None):
            raise ValueError("give exactly one of --input PATH or --synthetic COUNT")
        if self.input_format is not None and self.input is None:
            raise ValueError("--input-format applies to --input only")
        topic_options = {"partitions", "replication_factor"} & self.model_fields_set
        if topic_options and not self.create_topic:
            flags = " and ".join(f"--{name.replace('_', '-')}" for name in sorted(topic_options))
            verb = "apply" if len(topic_options) > 1 else "applies"
            raise ValueError(f"{flags} {verb} only with --create-topic")
        return self
