"""Start the long-running query: checks at start, then Kafka -> foreachBatch -> Delta."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from types import FrameType
from typing import Protocol

from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from infra.logs import FIELDS
from streaming.ops.dataloss import kafka_earliest_offsets
from streaming.ops.metrics import ServiceMetrics
from streaming.ops.outcome import BatchOutcome
from streaming.ops.progress import BatchLogListener
from streaming.query.checkpoint import plan_start, read_checkpoint_state
from streaming.query.processor import JudgeCache, MicroBatchProcessor
from streaming.score.provider import ModelProvider
from streaming.settings import ServiceSettings
from streaming.sink.delta import BatchRecord, DeltaSink, output_tables
from streaming.sink.maintenance import BackgroundCompaction, Compaction
from streaming.source.client import check_broker_reachable
from streaming.source.kafka import check_kafka_access, kafka_source_options, read_kafka_stream

__all__ = ["InferenceService", "Stoppable", "stop_on_signals"]

log = logging.getLogger(__name__)


@dataclass
class InferenceService:
    """The streaming inference service on one SparkSession.

    Args:
        spark: The session (built by ``infra.spark``).
        settings: Validated settings.
        client: The MLflow registry client.
        metrics: Service metrics (served over HTTP when ``settings.metrics_port`` is set).
    """

    spark: SparkSession
    settings: ServiceSettings
    client: MlflowClient
    metrics: ServiceMetrics

    def __post_init__(self) -> None:
        s = self.settings
        self.predictions, self.quarantine = output_tables(
            self.spark, s.predictions_table, s.quarantine_table, s.app_id
        )
        self.tables = (self.predictions, self.quarantine)
        self.judges = JudgeCache(s.parse_rules)
        self.models = ModelProvider(
            self.spark,
            s.model_uri,
            self.client,
            s.model_poll_seconds,
            self.metrics,
            prepare=self.judges.for_model,
        )
        self._options: dict[str, str] = {}
        self._restarting = _Flag()
        self._restart_error: BaseException | None = None
        self.compaction: BackgroundCompaction | None = None
        self.query: StreamingQuery | None = None
        self.processor: MicroBatchProcessor | None = None
        self.listener: BatchLogListener | None = None
        self._stop_requested = threading.Event()

    def start(self) -> StreamingQuery:
        """Check the configuration, then start the query.

        Raises:
            ConfigurationError: unreachable broker, unknown or unusable model, unwritable
                tables.
            CheckpointMismatchError: the checkpoint and the tables disagree.
        """
        s = self.settings
        options = kafka_source_options(
            s.bootstrap_servers,
            topics=s.topics,
            topic_pattern=s.topic_pattern,
            starting_offsets=s.starting_offsets,
            max_offsets_per_trigger=s.max_offsets_per_trigger,
            extra=s.kafka_options,
            fail_on_data_loss=s.on_data_loss == "fail",
        )
        # The model downloads, passes its smoke prediction and gets its record judge while the
        # two tables are created or checked (and their newest batches read for the start check),
        # the broker is asked who it is and the checkpoint is read. The query starts once the
        # model is ready: its plan carries the model's record judge. The tables are created
        # one after the other: the first creation runs Delta's code for the first time in the
        # JVM, and two side by side both ran it cold, taking the second core from the model's
        # load (the start's longest step) for little gain.
        checkpoint = str(s.checkpoint_dir)
        pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="start")
        model: Future[object] = pool.submit(self.models.start)
        try:
            newest = pool.submit(_ensure_and_read_newest, self.tables)
            check_broker_reachable(s.bootstrap_servers)
            check_kafka_access(self.spark, options)
            state = read_checkpoint_state(self.spark, checkpoint)
            predictions_last, quarantine_last = newest.result()
            plan = plan_start(
                state, predictions_last, quarantine_last, checkpoint, s.predictions_table
            )
        except BaseException:
            # Not started: the model's load is let finish, so nothing runs on after the error.
            model.cancel()
            pool.shutdown(wait=True)
            raise
        pool.shutdown(wait=False)
        if plan.replay is not None:
            log.info(
                "batch %d was begun before the restart; replaying it with model version %s",
                plan.replay.batch_id,
                plan.replay.model_version,
            )
        if s.metrics_port is not None:
            self.metrics.serve(s.metrics_port, s.metrics_host)
        if s.compact_every is not None:
            self.compaction = BackgroundCompaction(
                self.spark,
                [t.path for t in self.tables],
                s.compact_every,
                on_done=self._compacted,
            )
        self.processor = MicroBatchProcessor(
            self.models,
            self.predictions,
            self.quarantine,
            self.metrics,
            replay=plan.replay,
            committed_through=predictions_last.batch_id if predictions_last else None,
            begun_through=state.planned,
            judges=self.judges,
            after_batch=self._after_batch,
            max_records=s.max_offsets_per_trigger,
        )
        earliest = (
            kafka_earliest_offsets(s.bootstrap_servers, s.kafka_client_options)
            if s.on_data_loss == "skip"
            else None
        )
        self.listener = BatchLogListener(
            s.query_name, self.processor.outcome, self.metrics, earliest
        )
        self.spark.streams.addListener(self.listener)
        self._options = options
        try:
            model.result()
            self.query = self._start_query()
        except BaseException:
            # The model failed its load or check: no query was started, nothing written.
            if self.query is not None:
                self.query.stop()
            self._remove_listener()
            self._stop_compaction(wait=False)
            raise
        self.models.follow_in_background()
        log.info(
            "query %s started: %s -> %s (checkpoint %s, model %s)",
            s.query_name,
            ",".join(s.topics) or s.topic_pattern,
            s.predictions_table,
            checkpoint,
            self.models.current.identity,
        )
        return self.query

    def _start_query(self) -> StreamingQuery:
        """Start the query, its plan judging every record with the serving model's judge.

        The judge's projections are part of the stream's plan, analysed once here; each batch
        reaches the processor with its verdicts. A batch scored by another version is judged
        in the batch instead, and after it a thread of the service starts the query again
        with that version's judge (:meth:`_restart_query`).
        """
        s = self.settings
        processor = self.processor
        assert processor is not None
        judge = self.judges.for_model(self.models.current)
        records = read_kafka_stream(self.spark, self._options)
        if s.dedup_watermark:
            records = _drop_redelivered(records, s.dedup_watermark)
        processor.stream_judge = judge
        return (
            judge.judge(records)
            .frame.writeStream.queryName(s.query_name)
            .option("checkpointLocation", str(s.checkpoint_dir))
            .foreachBatch(processor.process)
            .trigger(**s.trigger.as_kwargs())  # type: ignore[call-overload]
            .start()
        )

    def _restart_query(self) -> None:
        """Stop the query between batches and start it again from its checkpoint, with the
        judge of the model now serving (after a swap to a version with another judge).

        A batch Spark had planned but not committed is run again by the new query: its writes
        are guarded like those of a batch begun before a restart of the process. A failure
        to start again is raised by :meth:`run_until_stopped`.
        """
        processor, query = self.processor, self.query
        assert processor is not None and query is not None
        try:
            processor.restart_wanted.clear()
            self._stop_between_batches(query)
            planned = read_checkpoint_state(self.spark, str(self.settings.checkpoint_dir)).planned
            processor.begun_through = -1 if planned is None else planned
            self.query = self._start_query()
            self.metrics.query_restarts.inc()
            log.info(
                "query %s started again with the record judge of model %s",
                self.settings.query_name,
                self.models.current.identity,
            )
        except BaseException as e:
            log.exception("query %s: starting again failed", self.settings.query_name)
            self._restart_error = e
        finally:
            self._restarting.end()

    def _stop_between_batches(self, query: StreamingQuery) -> None:
        """Stop ``query`` once no batch is in flight (a batch begun meanwhile is finished or,
        stopped by Spark, run again from the checkpoint)."""
        while self.processor is not None and self.processor.in_flight.is_set():
            self._stop_requested.wait(0.2)
        query.stop()

    def _stop_compaction(self, wait: bool) -> None:
        if self.compaction is not None:
            self.compaction.stop(wait)

    def _after_batch(self, outcome: BatchOutcome) -> None:
        if self.compaction is not None:
            self.compaction.after_batch(outcome.predictions + outcome.quarantined)
        processor = self.processor
        if (
            processor is not None
            and processor.restart_wanted.is_set()
            and not self._stop_requested.is_set()
            and self._restarting.begin()
        ):
            # Off the stream's thread: stopping a query waits for the thread that runs it.
            threading.Thread(target=self._restart_query, name="query-restart", daemon=True).start()

    def _compacted(self, path: str, result: Compaction, seconds: float) -> None:
        table = "predictions" if path == self.predictions.path else "quarantine"
        self.metrics.compactions.labels(table=table).inc()
        self.metrics.compacted_files.labels(table=table).inc(result.files_removed)
        log.info(
            "%s in %.1f s (in the background)",
            result.describe(path),
            seconds,
            extra={
                FIELDS: {
                    "event": "compaction",
                    "table": table,
                    "seconds": round(seconds, 3),
                    **asdict(result),
                }
            },
        )

    def _remove_listener(self) -> None:
        if self.listener is not None:
            self.spark.streams.removeListener(self.listener)
            self.listener = None

    def request_stop(self) -> None:
        """Ask the service to stop after the batch in flight (safe from a signal handler)."""
        self._stop_requested.set()

    def run_until_stopped(self, poll_s: float = 0.5) -> None:
        """Block until the query ends or a stop is requested, then stop cleanly.

        Raises:
            StreamingQueryException: the query failed (an infrastructure fault); a restart
                resumes from the checkpoint.
            Exception: starting the query again after a model swap failed (what Spark or
                the Kafka source raised); a restart resumes from the checkpoint.
        """
        query = self._started_query()
        while not self._stop_requested.is_set():
            query.awaitTermination(poll_s)  # type: ignore[arg-type]  # seconds; floats work
            if query.isActive:
                continue
            if not self._restarting.is_set() and query is self.query:
                break  # ended on its own, not for a restart
            self._restarting.wait_cleared()
            if self._restart_error is not None:
                break
            query = self._started_query()
        self._restarting.wait_cleared()
        query = self._started_query()
        if self._stop_requested.is_set() and query.isActive:
            log.info("stop requested; finishing the batch in flight")
            self._stop_between_batches(query)
            log.info("query %s stopped", self.settings.query_name)
        if self.listener is not None:
            self.listener.catch_up(query.recentProgress)
        self._remove_listener()
        self.models.stop_following()
        # A query that ended on its own (available-now) lets its compaction finish; a stop
        # asked for, or a failed query, does not wait for it.
        exception = self._restart_error or query.exception()
        self._stop_compaction(wait=not self._stop_requested.is_set() and exception is None)
        if exception is not None:
            raise exception

    def _started_query(self) -> StreamingQuery:
        if self.query is None:
            raise RuntimeError("start() first")
        return self.query


class _Flag:
    """Set by one thread at a time (:meth:`begin` says whether this one did); others can wait
    until it is cleared."""

    def __init__(self) -> None:
        self._cleared = threading.Condition()
        self._set = False

    def begin(self) -> bool:
        with self._cleared:
            if self._set:
                return False
            self._set = True
            return True

    def end(self) -> None:
        with self._cleared:
            self._set = False
            self._cleared.notify_all()

    def is_set(self) -> bool:
        return self._set

    def wait_cleared(self) -> None:
        with self._cleared:
            self._cleared.wait_for(lambda: not self._set)


def _ensure_and_read_newest(
    tables: tuple[DeltaSink, DeltaSink],
) -> tuple[BatchRecord | None, BatchRecord | None]:
    """Create or check each table, then read the newest batch this query wrote to those that
    existed (a table created just now holds none)."""
    predictions, quarantine = tables
    new_predictions, new_quarantine = predictions.ensure_table(), quarantine.ensure_table()
    return (
        None if new_predictions else predictions.last_batch(),
        None if new_quarantine else quarantine.last_batch(),
    )


def _drop_redelivered(records: DataFrame, watermark: str) -> DataFrame:
    """Drop records whose ``event_id`` was already seen within ``watermark`` (producer retries).

    State lives in the checkpoint (RocksDB). Records without an ``event_id`` are never dropped.
    """
    from pyspark.sql import functions as F

    event_id = F.get_json_object(F.col("value").cast("string"), "$.event_id")
    identity = F.coalesce(
        event_id,
        F.concat_ws(":", F.lit("offset"), "topic", "partition", "offset"),
    )
    return (
        records.withColumn("_dedup_id", identity)
        .withWatermark("timestamp", watermark)
        .dropDuplicatesWithinWatermark(["_dedup_id"])
        .drop("_dedup_id")
    )


class Stoppable(Protocol):
    """A service that can be asked to stop (``InferenceService``, ``RealTimeService``)."""

    def request_stop(self) -> None: ...


@contextmanager
def stop_on_signals(service: Stoppable) -> Iterator[None]:
    """Install SIGTERM/SIGINT handlers that ask ``service`` to stop (after its batch in
    flight, for the micro-batch service)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("received signal %d", signum)
        service.request_stop()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
