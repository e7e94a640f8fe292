"""The one place that configures a SparkSession for this project (Kafka source, Delta sink)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from pyspark import SparkContext
from pyspark.sql import SparkSession

from infra.class_archive import archive_java_options, class_archive_path
from infra.jvm_packages import resolve_spark_jars

__all__ = [
    "DELTA_CONF",
    "DRIVER_JAVA_OPTIONS",
    "build_spark_session",
    "command_session",
    "configure_builder",
    "stop_spark",
]

DELTA_CONF: Mapping[str, str] = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    # Tables stay on the default protocol so that delta-rs and DuckDB can read them.
    "spark.databricks.delta.properties.defaults.enableDeletionVectors": "false",
    # An append of no rows is still a commit: the service records every batch id in its
    # predictions table, also a batch with nothing to score (Delta skips such a commit by
    # default unless it carries a transaction id, which only a re-run batch does).
    "spark.databricks.delta.skipRecordingEmptyCommits": "false",
    # OPTIMIZE rewrites every file under this size. At Delta's default (1 GiB) a compaction
    # every few batches would rewrite the whole day's partition each time; a file of 64 MiB is
    # already large enough for readers.
    "spark.databricks.delta.optimize.minFileSize": str(64 * 1024 * 1024),
}

# The parse step's generated methods are larger than the JVM compiles by default (see below).
# The serial collector: a driver (and local executors) on a small machine; the JVM picks G1 on
# two cores, whose heap sizing and remembered sets took the service's process tree to
# 1,817 MiB on a 100,000-event backlog, against 1,360 MiB with this one (the same run, the
# default 1 GiB heap). Only a driver JVM that Python starts gets it: under spark-submit the
# submitter's options apply.
DRIVER_JAVA_OPTIONS = "-XX:-DontCompileHugeMethods -XX:+UseSerialGC"

_BASE_CONF: Mapping[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.streaming.stateStore.providerClass": (
        "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
    ),
    "spark.sql.streaming.forceDeleteTempCheckpointLocation": "true",
    "spark.ui.showConsoleProgress": "false",
    # The parse step checks every feature in one compiled projection: with a wide model it has
    # more than Spark's default 100 fields (which would turn whole-stage code generation off),
    # and its generated methods are larger than the JVM compiles by default.
    "spark.sql.codegen.maxFields": "1000",
    # Spark keeps its compiled classes in one cache per JVM, 100 by default. Every micro-batch
    # adds one (its lineage literals) and other work adds dozens (another query, a Delta
    # checkpoint or compaction). In the benchmark the parse step's class was pushed out between
    # drains and compiled again; its huge method, which the JVM's quick compiler gives up on
    # ("out of virtual registers"), then ran interpreted until the optimising compiler was done,
    # seconds on two cores: the slow drain rounds (benchmarks/results/README.md).
    "spark.sql.codegen.cache.maxEntries": "1000",
    "spark.driver.defaultJavaOptions": DRIVER_JAVA_OPTIONS,
    "spark.executor.defaultJavaOptions": "-XX:-DontCompileHugeMethods",
    # Jobs share the cores between pools: a background compaction (its own pool) runs beside the
    # micro-batches instead of holding them back until all its tasks have started (FIFO).
    "spark.scheduler.mode": "FAIR",
}

# On a local master the cluster-sized defaults (200 shuffle partitions, 50 partitions to rebuild a
# Delta snapshot) turn a small micro-batch into hundreds of tiny tasks on two cores.
_LOCAL_CONF: Mapping[str, str] = {
    "spark.sql.shuffle.partitions": "4",
    "spark.databricks.delta.snapshotPartitions": "2",
}


def configure_builder(
    builder: SparkSession.Builder,
    jars: Sequence[Path] = (),
    extra_conf: Mapping[str, str] | None = None,
) -> SparkSession.Builder:
    """Add the Delta extension, the project's defaults, jars and extra settings to a builder.

    Args:
        builder: A builder, e.g. ``SparkSession.builder.master("local[2]")``.
        jars: Jar paths to add (empty when ``spark-submit --jars`` already shipped them).
        extra_conf: Settings that override the defaults.

    Returns:
        The same builder, configured.
    """
    for key, value in {**_BASE_CONF, **DELTA_CONF, **(extra_conf or {})}.items():
        builder = builder.config(key, value)
    if jars:
        builder = builder.config("spark.jars", ",".join(str(jar) for jar in jars))
    return builder


def build_spark_session(
    app_name: str,
    jars_cache: Path,
    master: str | None = None,
    extra_conf: Mapping[str, str] | None = None,
    jvm_output: Path | None = None,
    class_archive: bool = True,
) -> SparkSession:
    """Get or create the SparkSession a command runs on.

    Under ``spark-submit`` (jars already on the classpath, master chosen by the submitter)
    nothing is resolved here; otherwise the pinned jars are resolved into ``jars_cache`` and the
    session runs on ``master`` (default ``local[*]``).

    Args:
        jvm_output: A file for everything the JVM that this call starts prints (its start-up
            banner, log4j's console output); ``None`` leaves it on the terminal.
        class_archive: Start the driver JVM from the class archive ``scripts/setup`` wrote
            (:mod:`infra.class_archive`), when there is one and the driver is started here.

    Raises:
        JvmPackagesError: the JVM packages cannot be resolved.
    """
    # The executors' Python must be this interpreter, where the project is installed.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    submitted = "spark.jars" in os.environ.get("PYSPARK_SUBMIT_ARGS", "") or _under_spark_submit()
    builder = SparkSession.builder.appName(app_name)
    if not submitted:
        builder = builder.master(master or "local[*]")
    jars = () if submitted else resolve_spark_jars(jars_cache)
    conf = dict(extra_conf or {})
    if class_archive and not submitted and "spark.driver.defaultJavaOptions" not in conf:
        archive = archive_java_options(class_archive_path(jars_cache))
        conf["spark.driver.defaultJavaOptions"] = f"{DRIVER_JAVA_OPTIONS} {archive}".strip()
    extra_conf = conf
    with _jvm_output_to(jvm_output):
        session = configure_builder(builder, jars, extra_conf).getOrCreate()
    _apply_local_defaults(session)
    return session


def _apply_local_defaults(session: SparkSession) -> None:
    """Small-machine SQL settings on a local master, where the user has not set them."""
    context = session.sparkContext
    if not (context.master or "").startswith("local"):
        return
    explicit = context.getConf()
    for key, value in _LOCAL_CONF.items():
        if not explicit.contains(key):
            session.conf.set(key, value)


@contextmanager
def _jvm_output_to(path: Path | None) -> Iterator[None]:
    """Point file descriptors 1 and 2 at ``path`` while a child process is started.

    The JVM started meanwhile keeps them for its whole life (and so do the Python workers it
    forks); this process gets its own terminal back right after.
    """
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


@contextmanager
def command_session(
    app_name: str,
    jars_cache: Path,
    master: str | None = None,
    extra_conf: Mapping[str, str] | None = None,
    log_level: str = "WARN",
    jvm_output: Path | None = None,
) -> Iterator[SparkSession]:
    """The session one command runs on, stopped (JVM included) when the command ends.

    A session that was already active (a test, a notebook) is used and left running.
    """
    owns_session = SparkSession.getActiveSession() is None
    session = build_spark_session(app_name, jars_cache, master, extra_conf, jvm_output)
    session.sparkContext.setLogLevel(log_level)
    try:
        yield session
    finally:
        if owns_session:
            stop_spark(session)  # the process ends with its JVM, not before it


def stop_spark(session: SparkSession, timeout_s: float = 30.0) -> None:
    """Stop ``session`` and wait for the JVM this Python process launched to exit.

    ``SparkSession.stop`` leaves the gateway JVM running until Python exits; a caller that must
    leave no process behind (tests, the demo) calls this instead.
    """
    gateway = SparkContext._gateway
    session.stop()
    if gateway is None:
        return
    jvm_process = getattr(gateway, "proc", None)
    gateway.shutdown()
    SparkContext._gateway = None
    SparkContext._jvm = None
    if jvm_process is None:
        return
    if jvm_process.stdin is not None:
        jvm_process.stdin.close()
    try:
        jvm_process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        jvm_process.kill()
        jvm_process.wait(timeout=timeout_s)


def _under_spark_submit() -> bool:
    # spark-submit starts the Python driver with these set; a plain `python` run does not.
    return "SPARK_ENV_LOADED" in os.environ or "PYSPARK_GATEWAY_PORT" in os.environ
