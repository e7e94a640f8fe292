"""Land the real-time query's predictions and dead-letter topics into the Delta tables, every
source record once (``python -m streaming land``).

The real-time query is at-least-once: after a restart it may emit a source record again, with
another ``scored_at``. This micro-batch query reads both topics and, per batch, keeps the first
row of each source record (topic, partition, offset), then inserts into each table only the
rows whose source record it does not hold yet (an insert-only Delta MERGE on the source
coordinates, reading only the files of the batch's days and offset ranges). So a record landed
in an earlier batch, or by an earlier run of this batch, is not landed again: exactly once by
source offset, whatever the checkpoint remembers.

The MERGE does not carry Delta's ``txnAppId``/``txnVersion`` the way the service's appends do
(Delta 4.4's MERGE would honour them, as session settings): the key makes a re-run batch insert
nothing anyway, and a batch-id guard would skip new records when the checkpoint is replaced
and its batch ids start again below those the table recorded. Each commit still records the
batch in its ``userMetadata``.

:class:`LandingProcessor` is the ``foreachBatch`` seam, callable as ``processor(records,
batch_id)`` without a stream.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from functools import reduce

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from infra.logs import FIELDS
from streaming.settings import LandSettings
from streaming.sink.delta import BatchRecord, DeltaSink, output_tables
from streaming.sink.realtime_topics import (
    first_per_source,
    parse_dead_letters,
    parse_prediction_records,
    without_sources,
)
from streaming.sink.tables import (
    SOURCE_COORDINATES,
    quarantine_rows,
)
from streaming.source.client import check_broker_reachable, prepare_topic
from streaming.source.kafka import check_kafka_access, kafka_source_options, read_kafka_stream

__all__ = [
    "BatchExtent",
    "LandingOutcome",
    "LandingProcessor",
    "LandingQuery",
    "batch_extent",
    "check_topics",
]

log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class LandingOutcome:
    """What one landing batch did."""

    batch_id: int
    rows_in: int
    predictions: int
    quarantined: int
    duration_s: float


Ranges = list[tuple[str, int, int, int]]


@dataclass(frozen=True)
class BatchExtent:
    """Where a batch's rows can meet rows already landed: per table, the (topic, partition,
    smallest offset, largest offset) of each source partition, and the predictions' days."""

    predictions: Ranges
    rejected: Ranges
    days: list[date]


def batch_extent(predictions: DataFrame, rejected: DataFrame) -> BatchExtent:
    """The extent of a batch's predictions and rejected rows (one small aggregation)."""
    tagged = predictions.select(
        F.lit(True).alias("_scored"), "topic", "partition", "offset", "event_date"
    ).unionByName(
        rejected.select(
            F.lit(False).alias("_scored"),
            "topic",
            "partition",
            "offset",
            F.lit(None).cast("date").alias("event_date"),
        )
    )
    found = (
        tagged.groupBy("_scored", "topic", "partition")
        .agg(
            F.min("offset").alias("low"),
            F.max("offset").alias("high"),
            F.collect_set("event_date").alias("days"),
        )
        .collect()
    )
    return BatchExtent(
        predictions=[(r.topic, r.partition, r.low, r.high) for r in found if r._scored],
        rejected=[(r.topic, r.partition, r.low, r.high) for r in found if not r._scored],
        days=sorted({d for r in found for d in r.days}),
    )


def _within(ranges: list[tuple[str, int, int, int]], prefix: str) -> Column:
    """A predicate true for the rows of these source offset ranges (Delta skips the files
    whose offset statistics fall outside them)."""
    return reduce(
        lambda a, b: a | b,
        [
            (F.col(f"{prefix}topic") == topic)
            & (F.col(f"{prefix}partition") == partition)
            & F.col(f"{prefix}offset").between(low, high)
            for topic, partition, low, high in ranges
        ],
    )


class LandingProcessor:
    """Land one micro-batch of the two topics; every source record once in one table.

    Args:
        predictions: The predictions table.
        quarantine: The quarantine table.
        predictions_topic: Records of this topic are predictions; the rest dead letters.
        clock: The quarantined-at time; injectable for tests.
    """

    def __init__(
        self,
        predictions: DeltaSink,
        quarantine: DeltaSink,
        predictions_topic: str,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.predictions = predictions
        self.quarantine = quarantine
        self.predictions_topic = predictions_topic
        self.clock = clock
        self.last: LandingOutcome | None = None

    def __call__(self, records: DataFrame, batch_id: int) -> LandingOutcome:
        """Land one batch: at most one MERGE commit per table.

        A source record is landed in the predictions table when the batch or the table has a
        prediction of it, else in the quarantine table (a dead letter, once). A record of the
        predictions topic that does not parse goes to the quarantine table under its own
        coordinates. Re-running a batch (after a crash) inserts nothing that is in already.

        Raises:
            Whatever the Delta writes raise (storage gone, a concurrent writer): the batch
            fails, and a restart re-runs it from the checkpoint without duplicates. Record
            content never raises.
        """
        started = time.monotonic()
        # Counted as the cache fills (during the extent's aggregation), not by a job of its own.
        counted = Observation(f"landing_{batch_id}_{uuid.uuid4().hex}")
        records = records.observe(counted, F.count(F.lit(1)).alias("rows")).persist()
        try:
            is_prediction = F.col("topic") == self.predictions_topic
            parsed = parse_prediction_records(records.where(is_prediction), batch_id)
            predictions = first_per_source(parsed.valid, "scored_at")
            dead = first_per_source(parse_dead_letters(records.where(~is_prediction)))
            # A source record both scored and dead-lettered (a restart under another model
            # version judged it again) lands as its prediction.
            rejected = without_sources(dead, predictions).unionByName(parsed.quarantined)
            extent = batch_extent(predictions, rejected)
            rows_in = int(counted.get.get("rows") or 0)
            landed = self._land_predictions(predictions, batch_id, extent)
            quarantined = self._land_rejected(rejected, batch_id, extent.rejected)
        finally:
            records.unpersist()
        outcome = LandingOutcome(
            batch_id, rows_in, landed, quarantined, round(time.monotonic() - started, 3)
        )
        self.last = outcome
        log.info(
            "landing batch %d: %d records, %d predictions and %d quarantined landed",
            batch_id,
            rows_in,
            landed,
            quarantined,
            extra={FIELDS: {"event": "landing_batch", **asdict(outcome)}},
        )
        return outcome

    def process(self, records: DataFrame, batch_id: int) -> None:
        """The ``foreachBatch`` function."""
        self(records, batch_id)

    def _land_predictions(self, rows: DataFrame, batch_id: int, extent: BatchExtent) -> int:
        ranges = extent.predictions
        if not ranges:
            return 0
        record = BatchRecord(self.predictions.app_id, batch_id, None)
        # A source record dead-lettered in an earlier batch stays where it landed.
        new = without_sources(
            rows, _read(rows.sparkSession, self.quarantine.path).where(_within(ranges, ""))
        )
        within = F.col("t.event_date").isin(extent.days) & _within(ranges, "t.")
        return self.predictions.insert_new(new, record, SOURCE_COORDINATES, within)

    def _land_rejected(self, rows: DataFrame, batch_id: int, ranges: Ranges) -> int:
        if not ranges:
            return 0
        spark = rows.sparkSession
        # Not a record the predictions table holds already (scored in an earlier batch).
        new = without_sources(rows, _read(spark, self.predictions.path).where(_within(ranges, "")))
        record = BatchRecord(self.quarantine.app_id, batch_id, None)
        shaped = quarantine_rows(new, batch_id, self.clock())
        return self.quarantine.insert_new(shaped, record, SOURCE_COORDINATES, _within(ranges, "t."))


def check_topics(settings: LandSettings) -> None:
    """Fail at start, without Spark, when the broker does not answer or a topic is missing.

    Raises:
        ConfigurationError: one line naming the broker or the topic.
    """
    check_broker_reachable(settings.bootstrap_servers)
    for topic in settings.topics:
        prepare_topic(
            settings.bootstrap_servers,
            settings.kafka_client_options,
            topic,
            missing_hint="check --predictions-topic and --dead-letter-topic, or create it",
        )


def _read(spark: SparkSession, path: str) -> DataFrame:
    return spark.read.format("delta").load(path)


class LandingQuery:
    """The landing query on one SparkSession: checks at start, then Kafka -> foreachBatch.

    Args:
        spark: The session (built by ``infra.spark``).
        settings: Validated settings.
    """

    def __init__(self, spark: SparkSession, settings: LandSettings) -> None:
        self.spark = spark
        self.settings = settings
        s = settings
        self.predictions, self.quarantine = output_tables(
            spark, s.predictions_table, s.quarantine_table, s.app_id
        )
        self.query: StreamingQuery | None = None
        self.processor: LandingProcessor | None = None

    def start(self) -> StreamingQuery:
        """Check the configuration Spark is needed for, then start the query (run
        :func:`check_topics` before Spark starts).

        Raises:
            ConfigurationError: Kafka refused the settings, or a table is unusable.
        """
        s = self.settings
        topics = s.topics
        options = kafka_source_options(
            s.bootstrap_servers,
            topics=topics,
            starting_offsets=s.starting_offsets,
            max_offsets_per_trigger=s.max_offsets_per_trigger,
            extra=s.kafka_options,
            include_headers=True,
        )
        check_kafka_access(self.spark, options)
        for table in (self.predictions, self.quarantine):
            table.ensure_table()
        checkpoint = s.checkpoint_dir
        self.processor = LandingProcessor(self.predictions, self.quarantine, s.predictions_topic)
        records = read_kafka_stream(self.spark, options, with_headers=True)
        self.query = (
            records.writeStream.queryName(s.query_name)
            .option("checkpointLocation", checkpoint)
            .foreachBatch(self.processor.process)
            .trigger(**s.trigger.as_kwargs())  # type: ignore[call-overload]
            .start()
        )
        log.info(
            "query %s started: %s -> %s, %s (checkpoint %s)",
            s.query_name,
            ",".join(topics),
            s.predictions_table,
            s.quarantine_table,
            checkpoint,
        )
        return self.query
