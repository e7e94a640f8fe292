"""``status``: lag per partition, last batch and serving model, without starting Spark."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from streaming.errors import ConfigurationError
from streaming.sink.delta import BatchRecord

__all__ = ["PartitionLag", "ServiceStatus", "committed_offsets", "read_status"]


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    next_offset: int
    end_offset: int | None

    @property
    def lag(self) -> int | None:
        return None if self.end_offset is None else max(self.end_offset - self.next_offset, 0)


@dataclass(frozen=True)
class ServiceStatus:
    last_committed_batch: int | None
    last_batch: BatchRecord | None
    partitions: list[PartitionLag]
    last_batch_rows: int | None = None

    def render(self) -> str:
        lines = [
            f"last committed batch: {self.last_committed_batch}",
            "model version of last batch: "
            f"{self.last_batch.model_version if self.last_batch else None}",
            f"rows in last batch: {self.last_batch_rows}",
            "topic\tpartition\tnext_offset\tend_offset\tlag",
        ]
        lines += [
            f"{p.topic}\t{p.partition}\t{p.next_offset}\t{p.end_offset}\t{p.lag}"
            for p in self.partitions
        ]
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


def _last_batch(predictions_table: str, app_id: str) -> tuple[BatchRecord | None, int | None]:
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        history = DeltaTable(predictions_table).history(200)
    except TableNotFoundError:
        return None, None
    for commit in history:
        record = BatchRecord.from_json(commit.get("userMetadata"))
        if record is not None and record.app_id == app_id:
            # The rows the commit wrote, as Delta recorded them (the stream does not count).
            written = (commit.get("operationMetrics") or {}).get("numOutputRows")
            return record, None if written is None else int(written)
    return None, None


def read_status(
    checkpoint: Path,
    bootstrap_servers: str | None,
    predictions_table: str | None,
    app_id: str,
    client_options: Mapping[str, str] | None = None,
) -> ServiceStatus:
    """Put together the query's status from its checkpoint, the broker and its table.

    Args:
        client_options: Kafka client options (``security.protocol``, ``sasl.jaas.config``...).
    """
    batch, offsets = committed_offsets(checkpoint)
    ends: dict[tuple[str, int], int] = {}
    if bootstrap_servers and offsets:
        from streaming.source.client import end_offsets

        ends = end_offsets(
            bootstrap_servers,
            client_options or {},
            [(t, p) for t, ps in offsets.items() for p in ps],
        )
    partitions = [
        PartitionLag(t, p, o, ends.get((t, p)))
        for t, ps in sorted(offsets.items())
        for p, o in sorted(ps.items())
    ]
    last, rows = _last_batch(predictions_table, app_id) if predictions_table else (None, None)
    return ServiceStatus(
        last_committed_batch=batch, last_batch=last, partitions=partitions, last_batch_rows=rows
    )
