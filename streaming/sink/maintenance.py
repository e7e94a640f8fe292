"""Table maintenance: compaction of small files (OPTIMIZE, with Spark) and removal of old ones
(VACUUM, with delta-rs).

Both are safe while the query writes: compaction only rewrites files (its commit changes no
data, so Delta lets it run beside appends), and vacuum deletes only files the table stopped
referencing longer ago than the retention.
"""

from __future__ import annotations

from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.errors import PySparkException
from pyspark.sql import SparkSession

from infra.errors import first_line
from streaming.errors import ConfigurationError
from streaming.sink.delta import read_table

__all__ = ["Compaction", "compact", "vacuum"]


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
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError, TableNotFoundError

    try:
        table = DeltaTable(path)
    except TableNotFoundError:
        raise ConfigurationError(f"no Delta table at {path}") from None
    try:
        return table.vacuum(retention_hours=int(retain_hours), dry_run=False)
    except DeltaError as e:
        raise ConfigurationError(f"cannot vacuum {path}: {first_line(e)}") from e
