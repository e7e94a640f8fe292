"""What a Delta table's log says about its commits: when each became visible, with which files.

Read straight from ``_delta_log/*.json``, so it works the same for tables written by Spark and
by delta-rs, and costs no Spark job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = [
    "AddedFile",
    "Commit",
    "LatencySample",
    "commit_latencies",
    "kafka_timestamps_ms",
    "read_commits",
    "rows_committed",
]

_TICKS_PER_MS = {"s": 1e-3, "ms": 1.0, "us": 1e3, "ns": 1e6}


@dataclass(frozen=True)
class AddedFile:
    """A data file a commit added: its path inside the table and its row count."""

    path: str
    rows: int


@dataclass(frozen=True)
class Commit:
    """One commit: its version, its ``commitInfo.timestamp`` (ms) and the files it added."""

    version: int
    timestamp_ms: int
    files: tuple[AddedFile, ...]

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)


def _added(action: dict[str, object]) -> AddedFile:
    stats = json.loads(str(action.get("stats") or "{}"))
    return AddedFile(unquote(str(action["path"])), int(stats.get("numRecords", 0)))


def _read_commit(path: Path) -> Commit:
    timestamp_ms = int(path.stat().st_mtime * 1000)
    files = []
    for line in path.read_text().splitlines():
        action = json.loads(line) if line.strip() else {}
        if "commitInfo" in action:
            timestamp_ms = int(action["commitInfo"].get("timestamp", timestamp_ms))
        elif "add" in action:
            files.append(_added(action["add"]))
    return Commit(int(path.stem), timestamp_ms, tuple(files))


def read_commits(table: str | Path) -> list[Commit]:
    """Every commit of ``table`` in version order (none when the table does not exist yet)."""
    log_dir = Path(table) / "_delta_log"
    if not log_dir.is_dir():
        return []
    return [_read_commit(path) for path in sorted(log_dir.glob("[0-9]*.json"))]


def rows_committed(table: str | Path) -> int:
    """Rows the table's commits added (from the per-file statistics)."""
    return sum(commit.rows for commit in read_commits(table))


def kafka_timestamps_ms(table: str | Path, file: AddedFile) -> np.ndarray:
    """The ``timestamp`` column (the Kafka record timestamp) of one data file, in epoch ms."""
    # The file alone: no partition columns inferred from its folder names.
    column = pq.ParquetFile(Path(table) / file.path).read(columns=["timestamp"]).column(0)
    ticks = pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False)
    return ticks / _TICKS_PER_MS[column.type.unit]


@dataclass(frozen=True)
class LatencySample:
    """Per output row, when it became visible minus its input's Kafka timestamp (ms); and the
    span from the first input record to the last output."""

    latencies_ms: np.ndarray
    span_ms: float


def commit_latencies(table: str | Path) -> LatencySample:
    """Per row of ``table``, its Delta commit time minus its Kafka record timestamp.

    Raises:
        RuntimeError: when no row landed.
    """
    latencies, first_record, last_commit = [], np.inf, 0.0
    for commit in read_commits(table):
        for file in commit.files:
            stamps = kafka_timestamps_ms(table, file)
            if len(stamps):
                latencies.append(commit.timestamp_ms - stamps)
                first_record = min(first_record, float(stamps.min()))
                last_commit = max(last_commit, commit.timestamp_ms)
    if not latencies:
        raise RuntimeError(f"no rows landed in {table}")
    return LatencySample(np.concatenate(latencies), last_commit - first_record)
