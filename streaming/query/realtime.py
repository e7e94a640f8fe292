"""Real-Time Mode: events topic -> the MLlib model -> predictions and dead-letter topics.

Spark's Real-Time Mode (``trigger(realTime=...)``) runs one long-running task per Kafka
partition that scores each record as it arrives; the trigger's duration is only how often the
query records its progress in the checkpoint. It allows a Kafka source, stateless operators and
the Kafka sink, and no Python UDF: MLlib models only (their transform runs in the JVM).

The query is one plan with no union. Spark refuses a union that reads the same source twice in
this mode (``STREAMING_REAL_TIME_MODE.IDENTICAL_SOURCES_IN_UNION_NOT_SUPPORTED``), and two
sources would need two tasks per partition. So every record goes through the model once: a
record that fails the parse is scored on the model's smoke-test row instead of its own values
(which the model's transform might refuse), its prediction is dropped, and the record goes to
the dead-letter topic. Each output row names its topic.

Delivery is at-least-once: records read since the last checkpoint are read and written again
after a restart (a crash, a stop, a model swap).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from mlflow.tracking import MlflowClient
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from infra.errors import first_line
from streaming.errors import ConfigurationError, ModelLoadError
from streaming.ops.metrics import ServiceMetrics
from streaming.ops.progress import BatchLogListener
from streaming.parse.events import EventJudge
from streaming.query.processor import JudgeCache
from streaming.score.identity import ModelIdentity
from streaming.score.model import LoadedModel
from streaming.score.provider import ModelProvider
from streaming.settings import RealTimeSettings, interval_seconds
from streaming.sink.topics import dead_letter_record, prediction_record, topic_records
from streaming.source.kafka import (
    check_kafka_access,
    kafka_sink_options,
    kafka_source_options,
    read_kafka_stream,
)

__all__ = [
    "RealTimeService",
    "admit_mllib",
    "realtime_records",
    "require_mllib",
    "wall_clock",
]

log = logging.getLogger(__name__)

_RUN_HINT = "use `python -m streaming run` (micro-batch, exactly once into Delta) to serve it"

# A record-at-a-time query left to the Kafka clients' defaults sends a fetch as soon as one record
# is there and a produce request per record. Letting each wait up to 5 ms for more took a third
# off the query's CPU at 2,000 events/s on this project's 2-core machine, and its p99 from
# 171 ms to 44 ms. A --kafka-option of the same name wins.
_LOW_LATENCY_SOURCE = {"kafka.fetch.min.bytes": "65536", "kafka.fetch.max.wait.ms": "5"}
_LOW_LATENCY_SINK = {"kafka.linger.ms": "5", "kafka.batch.size": "65536"}


def wall_clock() -> Column:
    """The time a row is computed, read per row from the JVM's clock.

    Spark replaces ``current_timestamp()`` in a stream by the batch's start time, which in
    Real-Time Mode is up to a checkpoint interval before a record is scored.
    """
    millis = F.reflect(F.lit("java.lang.System"), F.lit("currentTimeMillis")).cast("long")
    return F.timestamp_millis(millis)


def realtime_records(
    records: DataFrame,
    judge: EventJudge,
    model: LoadedModel,
    predictions_topic: str,
    dead_letter_topic: str,
    scored_at: Column | None = None,
) -> DataFrame:
    """Kafka records (key, value, topic, partition, offset, timestamp) as the records to write:
    a scored event to ``predictions_topic``, a record that fails the parse to
    ``dead_letter_topic`` (see :mod:`streaming.sink.topics` for both formats).

    One projection per step and no union, so that Real-Time Mode accepts the plan. Never raises
    on record content: a rejected record reaches the model only as ``model.example``.

    Returns:
        ``topic``, ``key``, ``value``, ``headers``: what Spark's Kafka sink writes.
    """
    judged = judge.judge(records)
    ok = F.col("_ok")
    features = judge.schema.features.fields
    marked = judged.frame.select(
        *judged.valid_columns,
        ok,
        F.when(~ok, judged.rejection).alias("_rejection"),
        F.col("key").alias("_source_key"),
        F.col("value").alias("_source_value"),
    )
    example = model.example or (None,) * len(features)
    # Only rows that fail the parse get the example's values; a valid row keeps its own.
    neutral = {
        f.name: F.when(ok, F.col(f.name)).otherwise(F.lit(v).cast(f.dataType)).alias(f.name)
        for f, v in zip(features, example, strict=True)
    }
    scoreable = marked.select(*[neutral.get(c, F.col(c)) for c in marked.columns])
    scored = model.score(scoreable)
    stamp = scored_at if scored_at is not None else wall_clock()
    rejection = F.col("_rejection")
    record = F.when(ok, prediction_record(model.identity, predictions_topic, stamp)).otherwise(
        dead_letter_record(
            dead_letter_topic,
            F.col("_source_key"),
            F.col("_source_value"),
            rejection["kind"],
            rejection["detail"],
        )
    )
    return topic_records(scored, record)


def require_mllib(model: LoadedModel) -> None:
    """Refuse a model that would score through a Python UDF, which Real-Time Mode forbids.

    Raises:
        ModelLoadError: ``model`` is not an MLlib (``spark`` flavor) model.
    """
    if model.flavor != "spark":
        raise ModelLoadError(
            f"real-time mode scores MLlib models only; {model.identity} is a {model.flavor} "
            f"model: {_RUN_HINT}"
        )


def admit_mllib(identity: ModelIdentity) -> None:
    """Refuse a model that is not MLlib from its ``MLmodel`` file alone, before it is loaded.

    Raises:
        ModelLoadError: the model's metadata cannot be read.
        ConfigurationError: it is not an MLlib model (at start: the one line the user sees;
            for a new version of the alias: the reason it is rejected).
    """
    import mlflow

    try:
        flavors = mlflow.models.get_model_info(identity.uri).flavors
    except Exception as e:
        raise ModelLoadError(f"cannot read {identity.uri}: {first_line(e)}") from e
    if "spark" not in flavors:
        names = ", ".join(sorted(flavors))
        raise ConfigurationError(
            f"real-time mode scores MLlib models only; {identity} is a pyfunc model "
            f"(flavors {names}): {_RUN_HINT}"
        )


class _CheckpointListener(BatchLogListener):
    """One log line per checkpoint interval, and a signal at each batch boundary.

    Each batch (checkpoint interval) is counted once in ``inference_batches_total`` and its
    records read in ``inference_records_in_total``: what Real-Time Mode reports at a
    checkpoint, so the figures move once per interval.
    """

    def __init__(self, query_name: str, metrics: ServiceMetrics) -> None:
        super().__init__(query_name, lambda batch_id: None, metrics)
        self.boundary = threading.Event()

    def report(self, progress: dict[str, Any]) -> dict[str, Any] | None:
        fields = super().report(progress)
        if fields is not None:
            self.metrics.batches.inc()
            self.metrics.records_in.inc(int(progress.get("numInputRows") or 0))
        return fields

    def onQueryProgress(self, event: Any) -> None:  # noqa: N802  (Spark's API)
        super().onQueryProgress(event)
        if event.progress.name == self.query_name:
            self.boundary.set()


@dataclass
class RealTimeService:
    """The real-time query on one SparkSession, restarted from its checkpoint when the model
    alias moves to a version that passes its checks.

    Args:
        spark: The session (built by ``infra.spark``).
        settings: Validated settings.
        client: The MLflow registry client.
        metrics: Where model swaps and batch figures are counted (served over HTTP when
            ``settings.metrics_port`` is set).
    """

    spark: SparkSession
    settings: RealTimeSettings
    client: MlflowClient
    metrics: ServiceMetrics

    def __post_init__(self) -> None:
        s = self.settings
        self.judges = JudgeCache(s.parse_rules)
        self.models = ModelProvider(
            self.spark,
            s.model_uri,
            self.client,
            s.model_poll_seconds,
            self.metrics,
            prepare=self._prepare,
            admit=admit_mllib,
        )
        self.query: StreamingQuery | None = None
        self.listener: _CheckpointListener | None = None
        self.swaps = 0
        self._stop_requested = threading.Event()

    def _prepare(self, model: LoadedModel) -> None:
        require_mllib(model)
        self.judges.for_model(model)

    def check_slots(self, partitions: int) -> None:
        """Real-Time Mode holds one task slot per source partition for as long as it runs.

        Raises:
            ConfigurationError: Spark has fewer slots than the topic has partitions.
        """
        slots = self.spark.sparkContext.defaultParallelism
        if slots < partitions:
            raise ConfigurationError(
                f"real-time mode runs one long-running task per partition: topic "
                f"{self.settings.topic} has {partitions} partitions but Spark has {slots} task "
                f"slots; give it {partitions + 1} cores or more (e.g. --master "
                f"local[{partitions + 1}]; one more than the partitions lets a new model "
                "version be checked while the query runs)"
            )

    def start(self, partitions: int) -> StreamingQuery:
        """Check the configuration, load the model, then start the query.

        Args:
            partitions: How many partitions the events topic has.

        Raises:
            ConfigurationError: too few task slots, unknown or non-MLlib or unusable model,
                Kafka refusing the client settings.
        """
        s = self.settings
        self.check_slots(partitions)
        check_kafka_access(self.spark, self._source_options())
        model = self.models.start()
        if s.metrics_port is not None:
            self.metrics.serve(s.metrics_port, s.metrics_host)
        self.listener = _CheckpointListener(s.query_name, self.metrics)
        self.spark.streams.addListener(self.listener)
        try:
            self.query = self._start_query(model)
        except BaseException:
            self._remove_listener()
            raise
        self.models.follow_in_background()
        return self.query

    def _source_options(self) -> dict[str, str]:
        s = self.settings
        return kafka_source_options(
            s.bootstrap_servers,
            topics=(s.topic,),
            starting_offsets=s.starting_offsets,
            extra={**_LOW_LATENCY_SOURCE, **s.kafka_options},
            fail_on_data_loss=s.on_data_loss == "fail",
        )

    def _start_query(self, model: LoadedModel) -> StreamingQuery:
        s = self.settings
        records = realtime_records(
            read_kafka_stream(self.spark, self._source_options()),
            self.judges.for_model(model),
            model,
            s.predictions_topic,
            s.dead_letter_topic,
        )
        query = (
            records.writeStream.format("kafka")
            .options(
                **kafka_sink_options(s.bootstrap_servers, {**_LOW_LATENCY_SINK, **s.kafka_options})
            )
            .queryName(s.query_name)
            .option("checkpointLocation", s.checkpoint_dir)
            .outputMode("update")
            .trigger(realTime=s.checkpoint_interval)  # type: ignore[call-overload]
            .start()
        )
        log.info(
            "real-time query %s started: %s -> %s, dead letters -> %s (checkpoint %s, "
            "every %s; model %s)",
            s.query_name, s.topic, s.predictions_topic, s.dead_letter_topic,
            s.checkpoint_dir, s.checkpoint_interval, model.identity,
        )  # fmt: skip
        return query

    def request_stop(self) -> None:
        """Ask the service to stop (safe from a signal handler)."""
        self._stop_requested.set()

    def run_until_stopped(self, poll_s: float = 0.5) -> None:
        """Block until the query fails or a stop is requested; restart it on a model swap.

        Raises:
            StreamingQueryException: the query failed; a restart resumes from the checkpoint.
        """
        try:
            while not self._stop_requested.is_set():
                query = self.query
                if query is None:
                    raise RuntimeError("start() first")
                if not query.isActive:
                    break
                query.awaitTermination(poll_s)  # type: ignore[arg-type]  # seconds; floats work
                if self.models.ready_version is not None and not self._stop_requested.is_set():
                    self._swap()
            query = self.query
            assert query is not None
            if query.isActive:
                query.stop()
                log.info("query %s stopped", self.settings.query_name)
        finally:
            self.models.stop_following()
            self._remove_listener()
        exception = query.exception()
        if exception is not None:
            raise exception

    def _swap(self) -> None:
        """Restart the query from its checkpoint with the version made ready in the background.

        The stop waits for a batch boundary (the checkpoint was just written), so that the
        records written twice are only those read since then.
        """
        assert self.query is not None and self.listener is not None
        boundary = self.listener.boundary
        boundary.clear()
        deadline = time.monotonic() + interval_seconds(self.settings.checkpoint_interval) + 10
        while not boundary.wait(0.2):
            if self._stop_requested.is_set():
                return  # the stop comes first; the next start serves the new version
            if time.monotonic() > deadline:
                log.warning("no batch boundary seen; stopping the query mid-batch for the swap")
                break
        self.query.stop()
        # ``for_batch`` swaps in the version made ready; the id names the boundary in the log.
        model = self.models.for_batch(self.listener.newest_batch + 1)
        self.swaps += 1
        self.query = self._start_query(model)

    def _remove_listener(self) -> None:
        if self.listener is not None:
            self.spark.streams.removeListener(self.listener)
            self.listener = None
