"""One benchmark run: broker, models and topics up, every selected arm measured, all torn down."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from pyspark.sql import SparkSession

from benchmarks.arms import Workbench
from benchmarks.figures import (
    ARMS,
    CONSUMER,
    DRAIN_ARMS,
    LATENCY_ARMS,
    PARTS,
    READ_TIME,
    SERVICE_MLLIB_MALFORMED,
    STARTED_ARMS,
    STARTUPS,
    STREAMING,
    Machine,
    Results,
    Startup,
)
from benchmarks.maintenance import DEFAULT_APPENDS, READS_AFTER_FIRST, measure_read_time
from benchmarks.measure import measure_drain, measure_latency
from benchmarks.polling import say
from benchmarks.registry import BenchmarkModels, register_models
from benchmarks.startup import Launch, measure_startup, started_arm
from benchmarks.topics import event_pool, local_broker, preload
from infra.paths import ProjectHome
from infra.spark import build_spark_session, stop_spark
from infra.tracking import TrackingStore, configure_tracking
from streaming.settings import DEFAULT_CHECKPOINT_INTERVAL, interval_seconds

__all__ = ["CHECKOUT", "Options", "describe_machine", "run"]

CHECKOUT = Path(__file__).resolve().parent.parent
_BROKER_SCRIPT = CHECKOUT / "scripts" / "kafka-broker"
_MALFORMED_EVERY = 100  # 1%
_LIVE_POOL = 20_000
_LATENCY_DRAIN_TIMEOUT_S = 300.0
_CLEAN_TOPIC = "listings"
_MALFORMED_TOPIC = "listings-malformed"
_SMALL_TOPIC = "listings-small"


@dataclass(frozen=True)
class Options:
    """What to measure and how much.

    Attributes:
        events: Events pre-loaded for the drains (and the large backlog).
        rates: Offered loads of the latency runs, events per second.
        latency_seconds: How long each latency run sends (the real-time arm: whole checkpoint
            intervals, at least this long).
        realtime_interval_s: The real-time arm's checkpoint interval.
        arms: The arms to measure (a subset of ``ARMS``).
        parts: The parts to run (a subset of ``PARTS``): the arms on the broker (``streaming``),
            the reads of a day's partition before and after compaction (``readtime``).
        appends: Small appends to the day the read-time part reads.
        reads: Timed reads after the first of each reader in the read-time part.
        out: Folder of the results.
        kafka_port: Port of the run's own broker (the next port is its controller's).
        small_backlog: Events waiting for the small-backlog start.
        startups: The backlogs the service is started on (a subset of ``STARTUPS``).
        startup_arms: The arms started on them (a subset of ``STARTED_ARMS``; those of
            ``arms``).
        seed: Seed of the events and models.
        keep_work: Keep the work folder (tables, logs) instead of deleting it.
        warm_up: Before the measured drains, let every arm on the run's Spark session drain its
            topic once, unmeasured (the JIT compiles the queries' code meanwhile).
        drain_rounds: Rounds of drains: in each, every selected arm on the run's Spark session
            drains the topic once, in turn (the hand-written consumer in the first only). An
            arm's figure is its median round, so that which arm ran first, and what the JIT had
            compiled by then, does not decide the ratios; the cost of malformed events is the
            median of the rounds' clean and malformed service drains.
    """

    events: int = 300_000  # with the rest of the defaults, about 30 minutes on 2 cores
    rates: tuple[int, ...] = (1000, 5000)
    latency_seconds: float = 60.0
    realtime_interval_s: float = interval_seconds(DEFAULT_CHECKPOINT_INTERVAL)
    arms: tuple[str, ...] = ARMS
    parts: tuple[str, ...] = PARTS
    appends: int = DEFAULT_APPENDS
    reads: int = READS_AFTER_FIRST
    out: Path = CHECKOUT / "benchmarks" / "results"
    kafka_port: int = 19492
    small_backlog: int = 1000
    startups: tuple[str, ...] = STARTUPS
    startup_arms: tuple[str, ...] = STARTED_ARMS
    seed: int = 7
    keep_work: bool = False
    warm_up: bool = True
    drain_rounds: int = 3

    @property
    def drain_timeout_s(self) -> float:
        """Longest a drain may take: generous, at 100 events/s or ten minutes."""
        return max(600.0, self.events / 100)


@dataclass
class _Run:
    """One run's state, passed between its phases."""

    options: Options
    env: Mapping[str, str]
    python: str
    work: Path
    results: Results
    bootstrap: str = ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def describe_machine(command: str) -> Machine:
    """Cores, memory, date and versions of this run."""
    versions = ", ".join(
        f"{name} {version(name)}" for name in ("pyspark", "delta-spark", "mlflow", "deltalake")
    )
    return Machine(
        cores=os.cpu_count() or 1,
        memory_bytes=os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        command=command,
        versions=f"Python {platform.python_version()}, {versions}",
    )


@contextmanager
def _spark_session() -> Iterator[SparkSession]:
    """The session of the in-process arms, with its UI on (for the job counts)."""
    spark = build_spark_session(
        "benchmarks",
        ProjectHome(CHECKOUT).spark_jars,
        master="local[*]",
        extra_conf={
            "spark.ui.enabled": "true",
            "spark.ui.port": str(_free_port()),
            "spark.ui.retainedJobs": "10000",
            "spark.sql.streaming.numRecentProgressUpdates": "1000",
        },
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        yield spark
    finally:
        stop_spark(spark)


def _preload_topics(run: _Run) -> None:
    o = run.options
    say(f"pre-loading {o.events:,} events (and the other topics)")
    preload(run.bootstrap, _CLEAN_TOPIC, o.events, o.seed)
    preload(run.bootstrap, _SMALL_TOPIC, o.small_backlog, o.seed + 1_000_000)
    if SERVICE_MLLIB_MALFORMED in o.arms:
        preload(run.bootstrap, _MALFORMED_TOPIC, o.events, o.seed, _MALFORMED_EVERY)


def _measure_in_process(run: _Run, bench: Workbench) -> None:
    """Warm the session up, then the rounds of drains and the latency runs of the selected
    arms."""
    o = run.options
    if o.warm_up:
        # Unmeasured: every arm on the session drains its topic once, so that the rounds measure
        # queries whose code the JIT has compiled, as a long-running query's is (a first drain
        # of the service took twice as long as its third in one JVM).
        for arm in _drain_arms(o, round_=1):
            warm_up = measure_drain(
                bench, arm, _drain_topic(arm), o.events, o.drain_timeout_s, warm_up=True
            )
            say(f"warm-up of {arm}: {warm_up.error or 'done'}")
    for round_ in range(o.drain_rounds):
        for arm in _drain_arms(o, round_):
            run.results.drains.append(
                measure_drain(bench, arm, _drain_topic(arm), o.events, o.drain_timeout_s, round_)
            )
    pool = event_pool(_LIVE_POOL, o.seed + 2_000_000)
    for rate in o.rates:
        for arm in (a for a in LATENCY_ARMS if a in o.arms):
            run.results.latencies.append(
                measure_latency(
                    bench,
                    arm,
                    rate,
                    o.latency_seconds,
                    pool,
                    _LATENCY_DRAIN_TIMEOUT_S,
                    o.realtime_interval_s,
                )
            )


def _drain_topic(arm: str) -> str:
    return _MALFORMED_TOPIC if arm == SERVICE_MLLIB_MALFORMED else _CLEAN_TOPIC


def _drain_arms(o: Options, round_: int) -> list[str]:
    """The arms that drain in round ``round_``: every selected one in the first, then the ones
    on the run's Spark session (the hand-written consumer is a new process each time, with
    nothing of an earlier drain to warm it up, and slow)."""
    arms = [a for a in o.arms if a in DRAIN_ARMS]
    return arms if round_ == 0 else [a for a in arms if a != CONSUMER]


def _measure_read_time(run: _Run, spark: SparkSession) -> None:
    o = run.options
    folder = run.work / "readtime"
    folder.mkdir(parents=True, exist_ok=True)
    run.results.compaction, run.results.reads = measure_read_time(
        spark, folder, o.appends, reads=o.reads
    )


def _measure_startups(run: _Run, models: BenchmarkModels, schema: str) -> list[Startup]:
    o = run.options
    launch = Launch(
        run.python, CHECKOUT, run.env, run.bootstrap, models.mllib_uri, models.store.tracking_uri
    )
    backlogs = (("small", _SMALL_TOPIC, o.small_backlog), ("large", _CLEAN_TOPIC, o.events))
    return [
        measure_startup(
            started_arm(arm, launch, schema),
            name,
            topic,
            events,
            run.work / "startup" / name / arm,
            o.drain_timeout_s,
        )
        for name, topic, events in backlogs
        if name in o.startups
        for arm in STARTED_ARMS
        if arm in o.arms and arm in o.startup_arms
    ]


def _measure_streaming(run: _Run, store: TrackingStore) -> None:
    """The arms on the run's broker; the read-time part on their session, after them."""
    o = run.options
    with local_broker(_BROKER_SCRIPT, o.kafka_port, run.work / "kafka", run.env) as bootstrap:
        run.bootstrap = bootstrap
        _preload_topics(run)
        configure_tracking(store)
        with _spark_session() as spark:
            say("training and registering the models")
            models = register_models(spark, store, run.work / "data", o.seed)
            bench = Workbench(spark, models, bootstrap, run.work, CHECKOUT, run.env, run.python)
            _measure_in_process(run, bench)
            if READ_TIME in o.parts:
                _measure_read_time(run, spark)
        run.results.startups = _measure_startups(run, models, bench.event_schema.json())


def run(options: Options, env: Mapping[str, str], python: str, command: str) -> Results:
    """Measure every selected arm on one broker and one set of pre-loaded topics, and the
    reads of a day's partition before and after compaction (the selected parts).

    Args:
        options: What to measure.
        env: The environment of the processes started (broker, service, consumer).
        python: The interpreter of those processes.
        command: The command line, for the report.

    Returns:
        The figures; an arm that failed holds its error instead.
    """
    work = Path(tempfile.mkdtemp(prefix="benchmark-"))
    store = TrackingStore(work / "mlflow")
    service_env = {**env, "MLFLOW_TRACKING_URI": store.tracking_uri}
    state = _Run(options, service_env, python, work, Results(describe_machine(command)))
    say(f"work folder: {work}")
    try:
        if STREAMING in options.parts:
            _measure_streaming(state, store)
        else:
            with _spark_session() as spark:
                _measure_read_time(state, spark)
    finally:
        if not options.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    return state.results
