"""``status``: lag per partition, last batch and serving model, without starting Spark.

Also a health check: :meth:`ServiceStatus.problems` says when the query is behind by more
than a threshold, or stalled (records waiting and no batch for too long).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streaming.errors import ConfigurationError
from streaming.sink.delta import BatchRecord

__all__ = [
    "HealthLimits",
    "PartitionLag",
    "ServiceStatus",
    "committed_offsets",
    "quarantined_by_kind",
    "read_status",
]


@dataclass(frozen=True)
class PartitionLag:
    """One partition: the offset the query reads next, the broker's end offset, and how many
    of the waiting records are older than the stall limit (``None``: not asked)."""

    topic: str
    partition: int
    next_offset: int
    end_offset: int | None
    stale: int | None = None

    @property
    def lag(self) -> int | None:
        return None if self.end_offset is None else max(self.end_offset - self.next_offset, 0)


@dataclass(frozen=True)
class HealthLimits:
    """When ``status`` calls the query unhealthy (exit code 1).

    Attributes:
        max_lag: Records waiting over all partitions; ``None``: not checked.
        max_stall_s: How long a record may wait unread (by its Kafka timestamp); ``None``:
            not checked. An idle query with nothing to read is never stalled, and records
            that arrived just now do not count, however long ago the last batch ran.
    """

    max_lag: int | None = None
    max_stall_s: float | None = None


@dataclass(frozen=True)
class ServiceStatus:
    """What ``status`` reports; ``now`` is when it was read."""

    last_committed_batch: int | None
    last_batch: BatchRecord | None
    partitions: list[PartitionLag]
    last_batch_rows: int | None = None
    last_batch_at: datetime | None = None
    quarantined_by_kind: dict[str, int] | None = None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def lag(self) -> int | None:
        """Records waiting over all partitions (``None`` when an end offset is unknown)."""
        lags = [p.lag for p in self.partitions]
        return None if any(lag is None for lag in lags) else sum(lag or 0 for lag in lags)

    @property
    def seconds_since_last_batch(self) -> float | None:
        if self.last_batch_at is None:
            return None
        return round(max((self.now - self.last_batch_at).total_seconds(), 0.0), 1)

    def problems(self, limits: HealthLimits) -> list[str]:
        """Why the query is unhealthy under ``limits``; empty when it is healthy."""
        found = []
        lag = self.lag
        if limits.max_lag is not None and lag is not None and lag > limits.max_lag:
            found.append(f"behind by {lag} records (more than --max-lag {limits.max_lag})")
        stale = sum(p.stale or 0 for p in self.partitions)
        if limits.max_stall_s is not None and stale:
            found.append(
                f"stalled: {stale} records waiting for more than {limits.max_stall_s:g} s "
                "(--max-stall-seconds)"
            )
        return found

    def to_dict(self, limits: HealthLimits) -> dict[str, Any]:
        problems = self.problems(limits)
        return {
            "healthy": not problems,
            "problems": problems,
            "last_committed_batch": self.last_committed_batch,
            "model_version": self.last_batch.model_version if self.last_batch else None,
            "last_batch_rows": self.last_batch_rows,
            "last_batch_at": self.last_batch_at.isoformat() if self.last_batch_at else None,
            "seconds_since_last_batch": self.seconds_since_last_batch,
            "lag": self.lag,
            "partitions": [
                {
                    "topic": p.topic,
                    "partition": p.partition,
                    "next_offset": p.next_offset,
                    "end_offset": p.end_offset,
                    "lag": p.lag,
                    "stale": p.stale,
                }
                for p in self.partitions
            ],
            "quarantined_by_kind": self.quarantined_by_kind,
        }

    def to_json(self, limits: HealthLimits) -> str:
        return json.dumps(self.to_dict(limits), indent=2, sort_keys=True)

    def render(self, limits: HealthLimits | None = None) -> str:
        """The status for people: a few lines, the partitions as a table, then the verdict."""
        idle = self.seconds_since_last_batch
        lines = [
            f"last committed batch: {self.last_committed_batch}",
            "model version of last batch: "
            f"{self.last_batch.model_version if self.last_batch else None}",
            f"rows in last batch: {self.last_batch_rows}",
            f"last batch: {'unknown' if idle is None else f'{idle:.1f} s ago'}",
            f"lag: {self.lag}",
        ]
        if self.quarantined_by_kind is not None:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.quarantined_by_kind.items()))
            lines.append(f"quarantined by kind: {kinds or 'none'}")
        lines.append("topic\tpartition\tnext_offset\tend_offset\tlag")
        lines += [
            f"{p.topic}\t{p.partition}\t{p.next_offset}\t{p.end_offset}\t{p.lag}"
            for p in self.partitions
        ]
        problems = self.problems(limits or HealthLimits())
        lines += [f"unhealthy: {problem}" for problem in problems] or ["healthy"]
        return "\n".join(lines)


def committed_offsets(checkpoint: Path) -> tuple[int | None, dict[str, dict[int, int]]]:
    """The newest committed batch id and the Kafka offsets the query will read next.

    Raises:
        ConfigurationError: the folder is not a streaming checkpoint.
    """
    commits = [int(p.name) for p in (checkpoint / "commits").glob("*") if p.name.isdigit()]
    if not (checkpoint / "offsets").is_dir():
        raise ConfigurationError(f"{checkpoint} is not a streaming checkpoint (no offsets log)")
    if not commits:
        return None, {}
    batch = max(commits)
    lines = (checkpoint / "offsets" / str(batch)).read_text().splitlines()
    # Line 1: log version; line 2: batch metadata; then one line per source.
    offsets: dict[str, dict[int, int]] = {}
    for line in lines[2:]:
        data = json.loads(line)
        for topic, partitions in data.items():
            offsets[topic] = {int(p): int(o) for p, o in partitions.items()}
    return batch, offsets


@dataclass(frozen=True)
class _LastBatch:
    record: BatchRecord | None = None
    rows: int | None = None
    at: datetime | None = None


def _last_batch(predictions_table: str, app_id: str) -> _LastBatch:
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        history = DeltaTable(predictions_table).history(200)
    except TableNotFoundError:
        return _LastBatch()
    for commit in history:
        record = BatchRecord.from_json(commit.get("userMetadata"))
        if record is not None and record.app_id == app_id:
            # The rows the commit wrote, as Delta recorded them (the stream does not count).
            written = (commit.get("operationMetrics") or {}).get("numOutputRows")
            stamp = commit.get("timestamp")
            return _LastBatch(
                record,
                None if written is None else int(written),
                None if stamp is None else datetime.fromtimestamp(int(stamp) / 1000, UTC),
            )
    return _LastBatch()


def _commit_time(checkpoint: Path, batch: int | None) -> datetime | None:
    """When the checkpoint committed ``batch`` (its commit file's time; local folders)."""
    if batch is None:
        return None
    path = checkpoint / "commits" / str(batch)
    return datetime.fromtimestamp(path.stat().st_mtime, UTC) if path.exists() else None


def quarantined_by_kind(quarantine_table: str) -> dict[str, int] | None:
    """Rows of the quarantine table per ``error_kind`` (reads that one column); ``None`` when
    there is no table there yet."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        table = DeltaTable(quarantine_table)
    except TableNotFoundError:
        return None
    kinds = table.to_pyarrow_table(columns=["error_kind"]).column("error_kind").to_pylist()
    return dict(Counter(str(kind) for kind in kinds))


def read_status(
    checkpoint: Path,
    bootstrap_servers: str | None,
    predictions_table: str | None,
    app_id: str,
    client_options: Mapping[str, str] | None = None,
    quarantine_table: str | None = None,
    stall_after_s: float | None = None,
) -> ServiceStatus:
    """Put together the query's status from its checkpoint, the broker and its tables.

    Args:
        client_options: Kafka client options (``security.protocol``, ``sasl.jaas.config``...).
        quarantine_table: When given, its rows are counted by error kind.
        stall_after_s: When given, the records waiting longer than this are counted per
            partition (by their Kafka timestamps; see :class:`HealthLimits`).
    """
    now = datetime.now(UTC)
    batch, offsets = committed_offsets(checkpoint)
    wanted = [(t, p) for t, ps in offsets.items() for p in ps]
    ends: dict[tuple[str, int], int] = {}
    since: dict[tuple[str, int], int | None] = {}
    if bootstrap_servers and offsets:
        from streaming.source.client import end_offsets, offsets_since

        ends = end_offsets(bootstrap_servers, client_options or {}, wanted)
        if stall_after_s is not None:
            cutoff_ms = int((now.timestamp() - stall_after_s) * 1000)
            since = offsets_since(bootstrap_servers, client_options or {}, wanted, cutoff_ms)
    partitions = [
        PartitionLag(t, p, o, ends.get((t, p)), _stale(o, ends.get((t, p)), since, (t, p)))
        for t, ps in sorted(offsets.items())
        for p, o in sorted(ps.items())
    ]
    last = _last_batch(predictions_table, app_id) if predictions_table else _LastBatch()
    return ServiceStatus(
        last_committed_batch=batch,
        last_batch=last.record,
        partitions=partitions,
        last_batch_rows=last.rows,
        last_batch_at=_commit_time(checkpoint, batch) or last.at,
        quarantined_by_kind=quarantined_by_kind(quarantine_table) if quarantine_table else None,
        now=now,
    )


def _stale(
    next_offset: int,
    end: int | None,
    since: Mapping[tuple[str, int], int | None],
    key: tuple[str, int],
) -> int | None:
    """Records from ``next_offset`` on that are older than the cutoff ``since`` was asked at."""
    if end is None or key not in since:
        return None
    first_recent = since[key]
    return max(min(end if first_recent is None else first_recent, end) - next_offset, 0)
