"""Records that retention deleted before the query read them (``--on-data-loss skip``).

With ``skip`` Spark's Kafka source moves past offsets the broker no longer holds instead of
failing the query. Spark's progress report of each batch says which offsets the batch was
planned to read (``startOffset`` to ``endOffset``) and how many records it read: when it read
fewer, the partitions whose earliest offset on the broker is now past the planned start are the
ones that lost records, and the range lost is from the planned start to that earliest offset.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "EarliestOffsets",
    "SkippedRange",
    "kafka_earliest_offsets",
    "partition_offsets",
    "skipped_ranges",
]

EarliestOffsets = Callable[[str], Mapping[int, int]]


@dataclass(frozen=True)
class SkippedRange:
    """Offsets ``from_offset`` (inclusive) to ``until_offset`` (exclusive) of one partition,
    deleted before they were read: they are in neither table."""

    topic: str
    partition: int
    from_offset: int
    until_offset: int

    @property
    def count(self) -> int:
        return self.until_offset - self.from_offset


def partition_offsets(value: Any) -> dict[str, dict[int, int]]:
    """A Kafka source's offsets in a progress report (a JSON text or object) as topic ->
    partition -> offset; empty for anything else (another source's offsets, ``None``)."""
    try:
        data = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        str(topic): {int(p): int(o) for p, o in partitions.items()}
        for topic, partitions in data.items()
        if isinstance(partitions, dict)
    }


def skipped_ranges(progress: Mapping[str, Any], earliest: EarliestOffsets) -> list[SkippedRange]:
    """The ranges one batch skipped, from its progress report.

    ``earliest`` (a broker look-up) is called only when the batch read fewer records than it
    was planned to, so a batch without loss costs nothing.
    """
    ranges: list[SkippedRange] = []
    for source in progress.get("sources", []):
        start = partition_offsets(source.get("startOffset"))
        end = partition_offsets(source.get("endOffset"))
        planned = sum(
            max(0, until - start[topic][p])
            for topic, partitions in end.items()
            for p, until in partitions.items()
            if p in start.get(topic, {})
        )
        if int(source.get("numInputRows", 0)) >= planned:
            continue
        for topic, partitions in end.items():
            first_kept = earliest(topic)
            for p, until in sorted(partitions.items()):
                began = start.get(topic, {}).get(p)
                kept = first_kept.get(p)
                if began is None or kept is None or kept <= began:
                    continue
                ranges.append(SkippedRange(topic, p, began, min(kept, until)))
    return ranges


def kafka_earliest_offsets(
    bootstrap_servers: str, client_options: Mapping[str, str]
) -> EarliestOffsets:
    """A look-up of a topic's earliest offsets on the broker (the project's Kafka client)."""
    from streaming.source.client import earliest_offsets

    return lambda topic: earliest_offsets(bootstrap_servers, client_options, topic)
