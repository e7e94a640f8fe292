"""Table maintenance: compaction of small files (OPTIMIZE, with Spark) and removal of old ones
(VACUUM, with delta-rs).

Both are safe while the query writes: compaction only rewrites files (its commit changes no
data, so Delta lets it run beside appends), and vacuum deletes only files the table stopped
referencing longer ago than the retention.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.errors import PySparkException
from pyspark.sql import SparkSession

from infra.errors import first_line
from streaming.errors import ConfigurationError
from streaming.sink.delta import read_table
from streaming.sink.deltars import open_table

__all__ = ["BackgroundCompaction", "Compaction", "compact", "vacuum"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Compaction:
    """What one compaction did (Delta's OPTIMIZE metrics)."""

    files_removed: int
    files_added: int
    bytes_removed: int
    bytes_added: int
    partitions_optimized: int

    def describe(self, path: str) -> str:
        if not self.files_removed:
            return f"{path}: nothing to compact"
        return (
            f"{path}: compacted {self.files_removed} files ({self.bytes_removed:,} bytes) into "
            f"{self.files_added} ({self.bytes_added:,} bytes) in "
            f"{self.partitions_optimized} partition(s)"
        )


def compact(spark: SparkSession, path: str, where: str | None = None) -> Compaction:
    """Rewrite the small files of ``path`` (the partitions matching ``where``) into large ones.

    Raises:
        ConfigurationError: no Delta table at ``path``, or ``where`` is not a predicate on its
            partition columns.
    """
    read_table(spark, path)  # one line when there is no table
    builder = DeltaTable.forPath(spark, path).optimize()
    if where:
        builder = builder.where(where)
    try:
        row = builder.executeCompaction().select("metrics.*").first()
    except PySparkException as e:
        raise ConfigurationError(f"cannot compact {path}: {first_line(e)}") from e
    if row is None:
        return Compaction(0, 0, 0, 0, 0)
    return Compaction(
        files_removed=int(row["numFilesRemoved"]),
        files_added=int(row["numFilesAdded"]),
        bytes_removed=int(row["filesRemoved"]["totalSize"] or 0),
        bytes_added=int(row["filesAdded"]["totalSize"] or 0),
        partitions_optimized=int(row["partitionsOptimized"]),
    )


def vacuum(path: str, retain_hours: float) -> list[str]:
    """Delete the files ``path`` stopped referencing more than ``retain_hours`` ago.

    With delta-rs: no Spark, and the log is read once instead of listing with Spark jobs.

    Returns:
        The files deleted.

    Raises:
        ConfigurationError: no Delta table at ``path``, or delta-rs cannot write to it.
    """
    from deltalake.exceptions import DeltaError

    table = open_table(path)
    try:
        return table.vacuum(retention_hours=int(retain_hours), dry_run=False)
    except DeltaError as e:
        raise ConfigurationError(f"cannot vacuum {path}: {first_line(e)}") from e


class BackgroundCompaction:
    """Compacts tables every ``every`` committed batches, in a thread beside the stream.

    The batch that reaches the count only wakes the thread; the compaction's Spark jobs run in
    a scheduler pool of their own, so the micro-batches keep running (sharing the cores) while
    it works. A failed compaction is logged and tried again after the next ``every`` batches:
    small files cost readers time, never correctness.

    Args:
        spark: The service's session.
        paths: The tables to compact, in order.
        every: Batches between two compactions.
        on_done: Called with each table's result (metrics, logs); not called on failure.
    """

    POOL = "maintenance"

    def __init__(
        self,
        spark: SparkSession,
        paths: Sequence[str],
        every: int,
        on_done: Callable[[str, Compaction, float], None] | None = None,
    ) -> None:
        if every <= 0:
            raise ValueError("every must be positive")
        self.spark = spark
        self.paths = tuple(paths)
        self.every = every
        self.on_done = on_done
        self.runs = 0
        self._since = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._cancel = False
        self._group = f"compaction-{uuid.uuid4().hex[:8]}"
        self._thread = threading.Thread(target=self._loop, name="compaction", daemon=True)
        self._thread.start()

    def after_batch(self, rows: int) -> None:
        """Count a committed batch that wrote ``rows`` (one without rows adds no file); wake
        the thread every ``every`` such batches, unless it is still compacting."""
        if rows <= 0:
            return
        self._since += 1
        if self._since >= self.every and self._idle.is_set():
            self._since = 0
            self._idle.clear()
            self._wake.set()

    def stop(self, wait: bool) -> None:
        """End the thread: after the compaction in flight (``wait``), or cancelling it (its
        rewrite is then not committed and the table stays as it was)."""
        self._cancel = not wait
        self._stopping.set()
        if self._cancel and not self._idle.is_set():
            self.spark.sparkContext.cancelJobGroup(self._group)
        self._wake.set()
        self._thread.join()

    def _loop(self) -> None:
        sc = self.spark.sparkContext
        sc.setLocalProperty("spark.scheduler.pool", self.POOL)
        sc.setJobGroup(self._group, "background compaction", interruptOnCancel=True)
        while not self._stopping.is_set() or not self._idle.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._idle.is_set():  # woken by stop(), with nothing asked for
                continue
            try:
                for path in self.paths:
                    if self._cancel:
                        break
                    self._compact(path)
                else:
                    self.runs += 1
            finally:
                self._idle.set()

    def _compact(self, path: str) -> None:
        started = time.monotonic()
        try:
            result = compact(self.spark, path)
        except Exception as e:  # a failed compaction never stops the stream
            if self._cancel:
                log.info("compaction of %s cancelled by the stop", path)
            else:
                log.warning("compaction of %s failed (tried again later): %s", path, first_line(e))
            return
        if self.on_done is not None:
            self.on_done(path, result, time.monotonic() - started)
