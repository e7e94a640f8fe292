"""What each command does, given its settings: the command line parses, these act."""

from __future__ import annotations

import logging
import re
import sys
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from infra.errors import first_line
from infra.tracking import TrackingStore, configure_tracking
from streaming.errors import ConfigurationError
from streaming.settings import (
    BatchSettings,
    CompactSettings,
    LandSettings,
    ProduceSettings,
    RealTimeSettings,
    ReportSettings,
    ServiceSettings,
    SparkCommand,
    SparkSessionCommand,
    StatusSettings,
    TailSettings,
    VacuumSettings,
    VerifySettings,
)
from streaming.sink.delta import check_table_location
from streaming.source.client import check_broker_reachable

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient
    from pyspark.sql import SparkSession

    from streaming.score.model import LoadedModel

__all__ = [
    "batch",
    "compact",
    "land",
    "produce",
    "realtime",
    "report",
    "run",
    "status",
    "tail",
    "vacuum",
    "verify",
]

log = logging.getLogger("streaming")

# How Spark's Kafka source words a failure on records deleted before they were read.
_DATA_LOSS = re.compile(r"KAFKA_DATA_LOSS|Some data may have been lost")


def _tracking(settings: SparkCommand) -> TrackingStore:
    store = settings.tracking_store
    configure_tracking(store)
    return store


def run(settings: ServiceSettings) -> int:
    """Run the streaming query until it ends, fails, or gets SIGTERM/SIGINT.

    Returns:
        0 after a clean stop or an ``available-now`` drain; 1 when the query failed.
    """
    from concurrent.futures import ThreadPoolExecutor

    # What can be checked without Spark is checked before it starts (it takes seconds).
    check_broker_reachable(settings.bootstrap_servers)
    for table in (settings.predictions_table, settings.quarantine_table):
        check_table_location(table)
    # MLflow takes seconds to import and to open its store, and the JVM seconds to start:
    # the two happen side by side.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="registry") as pool:
        client_ready = pool.submit(_registry_client, settings)
        with _session(settings, f"streaming-inference:{settings.query_name}") as spark:
            return _serve(spark, settings, client_ready.result())


def _session(settings: SparkSessionCommand, app_name: str) -> AbstractContextManager[SparkSession]:
    """The command's SparkSession, stopped with its JVM when the command ends."""
    from infra.spark import command_session

    return command_session(
        app_name,
        settings.project_home.spark_jars,
        settings.master,
        settings.conf,
        settings.spark_log_level,
        settings.jvm_output,
    )


def _registry_client(settings: SparkCommand) -> MlflowClient:
    from mlflow.tracking import MlflowClient

    store = _tracking(settings)
    return MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)


def _serve(spark: SparkSession, settings: ServiceSettings, client: MlflowClient) -> int:
    from pyspark.errors import StreamingQueryException

    from streaming.ops.metrics import ServiceMetrics
    from streaming.query.service import InferenceService, stop_on_signals

    service = InferenceService(spark, settings, client, ServiceMetrics())
    with stop_on_signals(service):
        service.start()
        try:
            service.run_until_stopped()
        except StreamingQueryException as e:
            cause = first_line(e)
            hint = (
                "records were deleted by retention before they were read: add "
                "--on-data-loss skip to skip them (each skipped range is logged), then restart"
                if _DATA_LOSS.search(str(e))
                else f"restart to resume from {settings.checkpoint_dir}"
            )
            print(f"error: query {settings.query_name} failed: {cause} ({hint})", file=sys.stderr)
            return 1
    return 0


def realtime(settings: RealTimeSettings) -> int:
    """Score the events topic into the predictions and dead-letter topics in Spark's Real-Time
    Mode until SIGTERM/SIGINT, following the model alias by restarts from the checkpoint.

    Returns:
        0 after a clean stop; 1 when the query failed.
    """
    from concurrent.futures import ThreadPoolExecutor

    from streaming.source.client import partition_counts

    check_broker_reachable(settings.bootstrap_servers)
    topics = (settings.topic, settings.predictions_topic, settings.dead_letter_topic)
    counts = partition_counts(settings.bootstrap_servers, settings.kafka_client_options, topics)
    missing = [t for t in topics if counts.get(t) is None]
    if missing:
        raise ConfigurationError(
            f"topic {', '.join(missing)} does not exist on {settings.bootstrap_servers}: create "
            "it first (realtime creates no topics)"
        )
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="registry") as pool:
        client_ready = pool.submit(_registry_client, settings)
        with _session(settings, f"streaming-realtime:{settings.query_name}") as spark:
            return _serve_realtime(
                spark, settings, client_ready.result(), counts[settings.topic] or 0
            )


def _serve_realtime(
    spark: SparkSession, settings: RealTimeSettings, client: MlflowClient, partitions: int
) -> int:
    from pyspark.errors import StreamingQueryException

    from streaming.ops.metrics import ServiceMetrics
    from streaming.query.realtime import RealTimeService
    from streaming.query.service import stop_on_signals

    service = RealTimeService(spark, settings, client, ServiceMetrics())
    with stop_on_signals(service):
        service.start(partitions)
        try:
            service.run_until_stopped()
        except StreamingQueryException as e:
            print(
                f"error: query {settings.query_name} failed: {first_line(e)} (restart to "
                f"resume from {settings.checkpoint_dir}; records since its last checkpoint "
                "are written again)",
                file=sys.stderr,
            )
            return 1
    return 0


def land(settings: LandSettings) -> int:
    """Land the real-time query's two topics into the Delta tables until stopped (SIGTERM,
    SIGINT) or, with ``available-now``, drained.

    Returns:
        0 after a clean stop or a drain; 1 when the query failed (a restart resumes it).
    """
    import signal

    from streaming.query.landing import LandingQuery, check_topics

    # What can be checked without Spark is checked before it starts (it takes seconds).
    check_broker_reachable(settings.bootstrap_servers)
    for table in (settings.predictions_table, settings.quarantine_table):
        check_table_location(table)
    check_topics(settings)
    with _session(settings, f"streaming-landing:{settings.query_name}") as spark:
        landing = LandingQuery(spark, settings)
        query = landing.start()
        stop = False

        def handler(signum: int, frame: object) -> None:
            nonlocal stop
            log.info("received signal %d", signum)
            stop = True

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            while query.isActive and not stop:
                query.awaitTermination(0.5)  # type: ignore[arg-type]  # seconds; floats work
            if query.isActive:
                query.stop()
            exception = query.exception()
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
        if exception is not None:
            cause = first_line(exception)
            print(
                f"error: query {settings.query_name} failed: {cause} "
                f"(restart to resume from {settings.checkpoint_dir})",
                file=sys.stderr,
            )
            return 1
    return 0


def batch(settings: BatchSettings) -> int:
    """Score a table with a registered model into a Delta predictions table."""
    from streaming.batch.scoring import read_input_table, write_batch_predictions
    from streaming.score.provider import ModelProvider

    client = _registry_client(settings)
    check_table_location(settings.predictions_table)
    with _session(settings, "streaming-inference:batch") as spark:
        model = ModelProvider(spark, settings.model_uri, client).start()
        table = read_input_table(spark, settings.input, settings.input_format)
        result = write_batch_predictions(
            spark, settings.input, table, model, settings.predictions_table
        )
    print(result.describe(settings.input, settings.predictions_table))
    return 0


def status(settings: StatusSettings) -> int:
    """Print lag per partition, the last batch and the model version that scored it; exit 1
    when the query is behind or stalled beyond the limits (a health check)."""
    from streaming.query.status import HealthLimits, read_status

    checkpoint = settings.checkpoint_dir
    if not checkpoint.exists():
        raise ConfigurationError(
            f"no checkpoint at {checkpoint}: give --checkpoint or --query-name"
        )
    limits = HealthLimits(settings.max_lag, settings.max_stall_seconds)
    result = read_status(
        checkpoint,
        settings.bootstrap_servers,
        settings.predictions_table,
        app_id=f"streaming-inference:{settings.query_name}:predictions",
        client_options=settings.kafka_client_options,
        quarantine_table=settings.quarantine_table,
        stall_after_s=settings.max_stall_seconds,
    )
    print(result.to_json(limits) if settings.output == "json" else result.render(limits))
    return 1 if result.problems(limits) else 0


def compact(settings: CompactSettings) -> int:
    """Compact a table's small files (Delta OPTIMIZE); safe while the query writes."""
    from streaming.sink.maintenance import compact as optimize

    check_table_location(settings.table)
    with _session(settings, "streaming-inference:compact") as spark:
        result = optimize(spark, settings.table, settings.where)
    print(result.describe(settings.table))
    return 0


def vacuum(settings: VacuumSettings) -> int:
    """Delete files the table no longer references, older than the retention (Delta VACUUM)."""
    from streaming.sink.maintenance import vacuum as remove_unreferenced

    deleted = remove_unreferenced(settings.table, settings.retain_hours)
    print(
        f"{settings.table}: deleted {len(deleted)} files unreferenced for over "
        f"{settings.retain_hours:g} h"
    )
    return 0


def tail(settings: TailSettings) -> int:
    """Print the newest rows of a table; with ``--follow``, the rows of each new batch."""
    from streaming.sink.tail import TableTail, render_json, render_text

    reader = TableTail(settings.table)
    header = True
    try:
        for rows in (
            reader.follow(settings.rows, settings.poll_seconds)
            if settings.follow
            else iter([reader.newest(settings.rows)])
        ):
            if settings.output == "json":
                text = render_json(rows)
            else:
                text = render_text(rows, header)
                header = False
            if text:
                print(text, flush=True)
    except KeyboardInterrupt:
        pass
    return 0


def report(settings: ReportSettings) -> int:
    """Write the PNG of a time window's figures from the two tables and print their summary."""
    from datetime import UTC, datetime

    from streaming.ops.report import Window, render_summary, write_report

    window = Window(*settings.window(datetime.now(UTC)))
    figures = write_report(
        settings.predictions_table, settings.quarantine_table, window, settings.output
    )
    print(render_summary(figures))
    print(f"wrote {settings.output}")
    return 0


def produce(settings: ProduceSettings) -> int:
    """Send events to a topic: a file replayed or synthetic listings, at ``--rate``, with
    ``--malformed-share`` of them malformed; progress on stderr, one report on stdout.

    Everything that can be checked before sending is (the input, the broker, the topic).

    Returns:
        0 when every record sent was acknowledged, 1 when not, 130 after Ctrl-C.
    """
    from streaming.produce.events import MalformedMix, prepare_events
    from streaming.produce.producer import send_events
    from streaming.produce.progress import ProgressLine
    from streaming.produce.sources import open_file, open_synthetic
    from streaming.source.client import TopicSpec, event_producer, prepare_topic

    if settings.input is not None:
        source = open_file(settings.input, settings.input_format, settings.key_field)
    else:
        assert settings.synthetic is not None
        source = open_synthetic(settings.synthetic, settings.seed, settings.key_field)
    servers, options = settings.bootstrap_servers, settings.kafka_client_options
    check_broker_reachable(servers, timeout_s=5)
    spec = TopicSpec(settings.partitions, settings.replication_factor)
    if prepare_topic(servers, options, settings.topic, spec if settings.create_topic else None):
        print(
            f"created topic {settings.topic} ({spec.partitions} partitions, replication factor "
            f"{spec.replication_factor})",
            file=sys.stderr,
        )
    mix = (
        MalformedMix.of_share(settings.malformed_share, settings.seed)
        if settings.malformed_share
        else None
    )
    producer = event_producer(servers, options)
    try:
        with ProgressLine(sys.stderr, settings.topic, source.total) as progress:
            report = send_events(
                producer,
                settings.topic,
                prepare_events(source.rows, mix),
                source.name,
                rate=settings.rate,
                progress=progress.show,
            )
    finally:
        producer.close(timeout=5)
    print(report.to_json() if settings.output == "json" else report.render())
    return report.exit_code


def verify(settings: VerifySettings) -> int:
    """Check the two tables against the topic; exit 0 when every offset landed once and every
    prediction is reproduced, 1 when not."""
    from streaming.query.verify import verify as check
    from streaming.score.provider import ModelProvider
    from streaming.sink.delta import read_table
    from streaming.source.kafka import read_kafka_topic

    check_broker_reachable(settings.bootstrap_servers)
    client = _registry_client(settings)
    with _session(settings, "streaming-inference:verify") as spark:

        def model_version(name: str, version: str) -> LoadedModel:
            return ModelProvider(spark, f"models:/{name}/{version}", client).start()

        verdict = check(
            read_kafka_topic(
                spark, settings.bootstrap_servers, settings.topic, settings.kafka_options
            ),
            read_table(spark, settings.predictions_table),
            read_table(spark, settings.quarantine_table),
            None if settings.skip_rescore else model_version,
            settings.parse_rules,
            topics=(settings.topic,),
        )
    print(verdict.to_json() if settings.output == "json" else verdict.render())
    return 0 if verdict.ok else 1
