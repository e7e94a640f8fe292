"""The figures a run measures, one dataclass per group; a failed measurement keeps its error."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from benchmarks.polling import say
from infra.errors import first_line

__all__ = [
    "ARMS",
    "CEILING",
    "CEILING_MODEL",
    "CONSUMER",
    "DRAIN_ARMS",
    "LATENCY_ARMS",
    "PARTS",
    "READERS",
    "READ_TIME",
    "REALTIME",
    "SERVICE_MLLIB",
    "SERVICE_MLLIB_MALFORMED",
    "SERVICE_PYFUNC",
    "STREAMING",
    "Drain",
    "Figure",
    "Latency",
    "Machine",
    "MalformedPair",
    "PartitionRead",
    "Results",
    "Startup",
    "TableCompaction",
    "recording_failure",
]

CEILING = "ceiling"
CEILING_MODEL = "ceiling-model"
SERVICE_MLLIB = "service-mllib"
SERVICE_PYFUNC = "service-pyfunc"
CONSUMER = "consumer"
SERVICE_MLLIB_MALFORMED = "service-mllib-malformed"
DRAIN_ARMS = (
    CEILING,
    CEILING_MODEL,
    SERVICE_MLLIB,
    SERVICE_PYFUNC,
    CONSUMER,
    SERVICE_MLLIB_MALFORMED,
)
# Spark Real-Time Mode, Kafka -> Kafka: measured under live load only (it has no Delta drain).
REALTIME = "realtime"
ARMS = (*DRAIN_ARMS, REALTIME)
LATENCY_ARMS = (CEILING_MODEL, SERVICE_MLLIB, CONSUMER, REALTIME)
READERS = ("delta-rs", "duckdb", "polars", "spark")
# The parts of a run: the arms on a broker, and the reads of a day before and after compaction.
STREAMING = "streaming"
READ_TIME = "readtime"
PARTS = (STREAMING, READ_TIME)
# The backlogs the service is started on, to time its first prediction.
STARTUPS = ("small", "large")
# The arms the start-up part starts as processes of their own, in this order.
STARTED_ARMS = (SERVICE_MLLIB, CEILING_MODEL, CEILING)
# The part of a micro-batch that none of the phases of Spark's progress report names.
OTHER_PHASE = "other"

_MIB = 1024 * 1024


@dataclass
class Figure:
    """A measurement that either holds numbers or says in one line why it failed."""

    error: str | None = field(default=None, kw_only=True)

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass
class Drain(Figure):
    """One arm draining a pre-loaded topic.

    Attributes:
        arm: The arm's name.
        events: Records in the topic.
        seconds: From the arm's start (query or consumer start) until every offset was written.
        batches: Micro-batches (or consumer writes) it took.
        spark_jobs: Spark jobs run meanwhile (``None`` for the consumer, which has no Spark).
        spilled_bytes: Bytes those jobs spilled to disk (``None`` for the consumer).
        peak_rss_bytes: Peak resident memory of the process tree doing the work.
        round: Which round of drains it was part of (0: the first).
        collector_ms: Milliseconds the run's JVM spent in garbage collection meanwhile (an
            arm on the run's Spark session; ``None`` for the consumer).
        phases_ms: Median milliseconds per phase of its micro-batches (Spark's
            ``durationMs``), so that a slow round can be compared with a fast one.
    """

    arm: str
    events: int
    round: int = 0
    seconds: float | None = None
    batches: int | None = None
    spark_jobs: int | None = None
    spilled_bytes: int | None = None
    peak_rss_bytes: int | None = None
    collector_ms: float | None = None
    phases_ms: dict[str, float] = field(default_factory=dict)

    @property
    def events_per_second(self) -> float | None:
        return self.events / self.seconds if self.seconds else None

    @property
    def jobs_per_batch(self) -> float | None:
        if self.spark_jobs is None or not self.batches:
            return None
        return self.spark_jobs / self.batches

    @property
    def peak_rss_mib(self) -> float | None:
        return None if self.peak_rss_bytes is None else self.peak_rss_bytes / _MIB

    @property
    def spilled_mib(self) -> float | None:
        return None if self.spilled_bytes is None else self.spilled_bytes / _MIB


@dataclass
class Latency(Figure):
    """One arm under a fixed offered load, produced live.

    Attributes:
        arm: The arm's name.
        offered_rate: Events per second asked of the producer.
        sent: Events the producer sent.
        send_seconds: How long sending took (longer than planned when the producer lagged).
        landed: Rows written by the arm.
        landed_seconds: From the first record's Kafka timestamp to the last commit.
        p50_ms: Median of commit time minus Kafka timestamp.
        p95_ms: 95th percentile of the same.
        p99_ms: 99th percentile of the same.
        max_ms: The slowest row's.
        seconds: How long the load was sent (the real-time arm: whole checkpoint intervals).
        batches: Micro-batches that read records (the consumer: its writes; 0 for ``realtime``).
        phases_ms: Median milliseconds per phase of those batches (Spark's ``durationMs``).
    """

    arm: str
    offered_rate: int
    sent: int = 0
    send_seconds: float | None = None
    landed: int = 0
    landed_seconds: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    seconds: float | None = None
    batches: int = 0
    phases_ms: dict[str, float] = field(default_factory=dict)

    @property
    def sent_rate(self) -> float | None:
        return self.sent / self.send_seconds if self.send_seconds else None

    @property
    def landed_rate(self) -> float | None:
        return self.landed / self.landed_seconds if self.landed_seconds else None


@dataclass
class Startup(Figure):
    """An arm started as a process of its own on a backlog: the service as users start it
    (``python -m streaming run``), or a ceiling arm's plain Spark job.

    Attributes:
        backlog: ``small`` or ``large``.
        events: Records waiting in the topic.
        arm: ``service-mllib``, ``ceiling`` or ``ceiling-model``.
        first_prediction_s: From ``Popen`` to the first commit holding predictions.
        drained_s: From ``Popen`` until every record was written.
        peak_rss_bytes: Peak resident memory of the process and its descendants.
    """

    backlog: str
    events: int
    arm: str = SERVICE_MLLIB
    first_prediction_s: float | None = None
    drained_s: float | None = None
    peak_rss_bytes: int | None = None

    @property
    def peak_rss_mib(self) -> float | None:
        return None if self.peak_rss_bytes is None else self.peak_rss_bytes / _MIB


@dataclass
class TableCompaction(Figure):
    """The predictions table of the read-time figures: how it was filled, and its compaction.

    Attributes:
        appends: Appends (one commit and one file each) to the day read.
        other_day_appends: Appends to the next day, so that the day is a real partition filter.
        rows_per_append: Rows of each append.
        timed_reads: Reads of each reader after its first one (the fastest is reported).
        write_seconds: How long the appends took.
        seconds: How long ``compact`` (Delta OPTIMIZE with Spark, the whole table) took.
        files_removed: Files the compaction removed (both days).
        files_added: Files it added.
    """

    appends: int
    other_day_appends: int
    rows_per_append: int
    timed_reads: int
    write_seconds: float | None = None
    seconds: float | None = None
    files_removed: int | None = None
    files_added: int | None = None


@dataclass
class PartitionRead(Figure):
    """One reader reading one day's partition in full, before and after the compaction.

    Attributes:
        reader: ``delta-rs``, ``duckdb``, ``polars`` or ``spark``.
        rows: Rows it read (the same before and after, checked).
        files_before: Data files of the day before the compaction.
        files_after: Data files of the day after it.
        first_before_s: The first read before the compaction.
        best_before_s: The fastest of the reads after the first, before the compaction.
        first_after_s: The first read after the compaction.
        best_after_s: The fastest of the reads after the first, after the compaction.
    """

    reader: str
    rows: int | None = None
    files_before: int | None = None
    files_after: int | None = None
    first_before_s: float | None = None
    best_before_s: float | None = None
    first_after_s: float | None = None
    best_after_s: float | None = None

    @property
    def speed_up(self) -> float | None:
        if not self.best_before_s or not self.best_after_s:
            return None
        return self.best_before_s / self.best_after_s


@dataclass(frozen=True)
class Machine:
    """Where and how the run happened."""

    cores: int
    memory_bytes: int
    date: str
    command: str
    versions: str


@dataclass(frozen=True)
class MalformedPair:
    """The service draining the clean topic, then the same events with 1% malformed."""

    clean: Drain
    malformed: Drain

    @property
    def ratio(self) -> float | None:
        """Throughput with malformed events over throughput without."""
        clean, malformed = self.clean.events_per_second, self.malformed.events_per_second
        return malformed / clean if clean and malformed else None


@dataclass
class Results:
    """Everything one run measured.

    ``drains`` holds every round's drain of every arm, in the order they ran.
    """

    machine: Machine
    drains: list[Drain] = field(default_factory=list)
    latencies: list[Latency] = field(default_factory=list)
    startups: list[Startup] = field(default_factory=list)
    compaction: TableCompaction | None = None
    reads: list[PartitionRead] = field(default_factory=list)

    def drain_arms(self) -> list[str]:
        """The arms that drained, in the order they first ran."""
        return list(dict.fromkeys(d.arm for d in self.drains))

    def rounds(self, arm: str) -> list[Drain]:
        """Every drain of ``arm``, by round."""
        return [d for d in self.drains if d.arm == arm]

    def drain(self, arm: str) -> Drain | None:
        """The median drain of ``arm`` by throughput (the lower of the two middle ones for an
        even count; a failed drain when none succeeded), if it was measured."""
        rounds = self.rounds(arm)
        measured = sorted(
            (d for d in rounds if d.events_per_second is not None),
            key=lambda d: d.events_per_second or 0.0,
        )
        if measured:
            return measured[(len(measured) - 1) // 2]
        return rounds[0] if rounds else None

    def median_drains(self) -> list[Drain]:
        """Each arm's median drain (:meth:`drain`), in the order the arms first ran."""
        return [d for d in map(self.drain, self.drain_arms()) if d is not None]

    @property
    def malformed_pairs(self) -> list[MalformedPair]:
        """The service's clean and malformed drains of each round."""
        return [
            MalformedPair(clean, malformed)
            for clean, malformed in zip(
                self.rounds(SERVICE_MLLIB), self.rounds(SERVICE_MLLIB_MALFORMED), strict=False
            )
        ]


@contextmanager
def recording_failure(figure: Figure, log: Callable[[str], None] = say) -> Iterator[None]:
    """Run a measurement; an exception becomes ``figure.error`` instead of ending the run."""
    try:
        yield
    except Exception as e:
        figure.error = f"{type(e).__name__}: {first_line(e)}"
        log(f"failed: {figure.error}")
