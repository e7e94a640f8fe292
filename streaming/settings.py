"""The one typed, frozen settings object of the service, built once at the edge (the CLI)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from streaming.errors import ConfigurationError
from streaming.jvm_packages import PROJECT_ROOT

__all__ = ["DEFAULT_CHECKPOINT_ROOT", "Secret", "ServiceSettings", "Trigger", "parse_trigger"]

DEFAULT_CHECKPOINT_ROOT = PROJECT_ROOT / "checkpoints"
_INTERVAL = re.compile(r"^(\d+)\s*(ms|s|sec|seconds|m|min|minutes)$")
_SECRET_KEY = re.compile(r"(password|secret|jaas|token|key\.password|sasl\.jaas)", re.IGNORECASE)


@dataclass(frozen=True)
class Secret:
    """A value that must never reach logs, MLflow params or the Spark UI."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


@dataclass(frozen=True)
class Trigger:
    """When micro-batches run: every ``interval`` or once over what is available now."""

    interval: str | None = "5 seconds"
    available_now: bool = False

    def as_kwargs(self) -> dict[str, object]:
        """Keyword arguments for ``DataStreamWriter.trigger``."""
        if self.available_now:
            return {"availableNow": True}
        return {"processingTime": self.interval}


def parse_trigger(text: str) -> Trigger:
    """Parse ``5s``, ``500ms``, ``1m`` or ``available-now``.

    Raises:
        ConfigurationError: the text is neither an interval nor ``available-now``.
    """
    cleaned = text.strip().lower()
    if cleaned in {"available-now", "availablenow", "available_now", "once"}:
        return Trigger(interval=None, available_now=True)
    match = _INTERVAL.match(cleaned)
    if match is None:
        raise ConfigurationError(
            f"--trigger {text!r} is not understood: use an interval like 5s, 500ms, 1m, "
            "or available-now"
        )
    amount, unit = int(match.group(1)), match.group(2)
    name = {"ms": "milliseconds", "m": "minutes", "min": "minutes", "minutes": "minutes"}.get(
        unit, "seconds"
    )
    return Trigger(interval=f"{amount} {name}")


def is_secret_option(key: str) -> bool:
    """Whether a Kafka option holds a credential (passwords, JAAS config, tokens)."""
    return bool(_SECRET_KEY.search(key))


@dataclass(frozen=True)
class ServiceSettings:
    """Everything the streaming service needs, validated at start.

    Kafka options (``kafka.*``) are passed through to Spark's Kafka source; those that hold
    credentials are kept as :class:`Secret`.
    """

    bootstrap_servers: str
    model_uri: str
    predictions_table: str
    quarantine_table: str
    topics: tuple[str, ...] = ()
    topic_pattern: str | None = None
    checkpoint: str | None = None
    query_name: str = "inference"
    trigger: Trigger = field(default_factory=Trigger)
    starting_offsets: str = "earliest"
    max_offsets_per_trigger: int | None = None
    kafka_options: Mapping[str, str | Secret] = field(default_factory=dict)
    model_poll_seconds: float = 30.0
    dedup_watermark: str | None = None
    metrics_port: int | None = None
    master: str | None = None
    spark_conf: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.bootstrap_servers.strip():
            raise ConfigurationError("--bootstrap-servers is empty: give HOST:PORT[,HOST:PORT]")
        if bool(self.topics) == bool(self.topic_pattern):
            raise ConfigurationError("give exactly one of --topic NAME[,NAME] or --topic-pattern")
        if not re.match(r"^[A-Za-z0-9_.-]+$", self.query_name):
            raise ConfigurationError(
                f"--query-name {self.query_name!r} may hold only letters, digits, '.', '_', '-'"
            )
        if self.max_offsets_per_trigger is not None and self.max_offsets_per_trigger <= 0:
            raise ConfigurationError("--max-offsets-per-trigger must be a positive number")
        if self.predictions_table.rstrip("/") == self.quarantine_table.rstrip("/"):
            raise ConfigurationError("--predictions-table and --quarantine-table must differ")

    @property
    def checkpoint_dir(self) -> str:
        """The query's checkpoint: ``checkpoints/<query name>`` unless given."""
        return self.checkpoint or str(DEFAULT_CHECKPOINT_ROOT / self.query_name)

    @property
    def app_id(self) -> str:
        """Delta ``txnAppId`` of this query's writes, stable across restarts of one query."""
        return f"streaming-inference:{self.query_name}"
