"""One structured log line per micro-batch, written when Spark reports the batch's progress.

The ``foreachBatch`` function knows what it wrote (rows scored, quarantined, model version);
only the query's progress report knows how far the batch left the query behind the topic's end.
The listener joins the two by batch id, so the line's lag is that batch's own.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from pyspark.sql.streaming import StreamingQueryListener

from infra.logs import FIELDS
from streaming.ops.dataloss import EarliestOffsets, skipped_ranges
from streaming.ops.metrics import ServiceMetrics
from streaming.ops.outcome import BatchOutcome

__all__ = ["BatchLogListener", "offsets_behind"]

log = logging.getLogger("streaming.batch")
_REPORTED_KEPT = 1024  # batch ids remembered, so that a batch is reported once


def offsets_behind(progress: dict[str, Any]) -> int | None:
    """Max offsets behind the latest over the sources of one progress report."""
    behind = [
        int(source.get("metrics", {}).get("maxOffsetsBehindLatest", 0))
        for source in progress.get("sources", [])
        if source.get("metrics", {}).get("maxOffsetsBehindLatest") is not None
    ]
    return max(behind) if behind else None


class BatchLogListener(StreamingQueryListener):
    """Logs each batch of one query (by id) and keeps the lag gauge current.

    Args:
        query_name: The query whose batches are reported.
        outcome_of: What the ``foreachBatch`` function did for a batch id, if known.
        metrics: Where the lag is published.
        earliest_offsets: With ``--on-data-loss skip``, the broker look-up that tells which
            offsets a batch skipped (see :mod:`streaming.ops.dataloss`); ``None`` otherwise.
    """

    def __init__(
        self,
        query_name: str,
        outcome_of: Callable[[int], BatchOutcome | None],
        metrics: ServiceMetrics,
        earliest_offsets: EarliestOffsets | None = None,
    ) -> None:
        self.query_name = query_name
        self.outcome_of = outcome_of
        self.metrics = metrics
        self.earliest_offsets = earliest_offsets
        self._reported: set[int] = set()
        self._lock = threading.Lock()

    def onQueryStarted(self, event: Any) -> None:  # noqa: N802  (Spark's API)
        pass

    def onQueryIdle(self, event: Any) -> None:  # noqa: N802
        pass

    def onQueryTerminated(self, event: Any) -> None:  # noqa: N802
        pass

    def onQueryProgress(self, event: Any) -> None:  # noqa: N802
        """Never raises: a failure here must not reach Spark's listener bus."""
        try:
            progress = event.progress
            if progress.name != self.query_name:
                return
            self.report(json.loads(progress.json))
        except Exception:  # pragma: no cover - logged, never raised into Spark
            log.exception("could not report a batch's progress")

    def catch_up(self, progress_reports: Iterable[Any]) -> None:
        """Report the batches the listener has not seen yet (``query.recentProgress`` once the
        query has ended: Spark delivers listener events asynchronously, and the last ones may
        not have arrived when the query stops)."""
        for progress in progress_reports:
            data = json.loads(progress.json)
            if data.get("name") == self.query_name:
                self.report(data)

    def report(self, progress: dict[str, Any]) -> dict[str, Any] | None:
        """Log the line for one progress report, once per batch; returns its fields (``None``
        when the batch was reported already)."""
        batch_id = int(progress.get("batchId", -1))
        with self._lock:
            if batch_id in self._reported:
                return None
            self._reported.add(batch_id)
            if len(self._reported) > _REPORTED_KEPT:
                self._reported = {b for b in self._reported if b > batch_id - _REPORTED_KEPT // 2}
        lag = offsets_behind(progress)
        if lag is not None:
            self.metrics.offsets_behind.set(lag)
        outcome = self.outcome_of(batch_id)
        fields: dict[str, Any] = {
            "event": "batch",
            "query": self.query_name,
            "batch_id": batch_id,
            "rows_in": int(progress.get("numInputRows", 0)),
            "offsets_behind_latest": lag,
            "trigger_ms": (progress.get("durationMs") or {}).get("triggerExecution"),
        }
        if outcome is not None:
            fields.update(
                predictions=outcome.predictions,
                quarantined=outcome.quarantined,
                model_version=outcome.model_version,
                duration_s=outcome.duration_s,
            )
        if self.earliest_offsets is not None:
            fields["offsets_skipped"] = self._report_skipped(progress, batch_id)
        log.info("batch %d", batch_id, extra={FIELDS: fields})
        return fields

    def _report_skipped(self, progress: dict[str, Any], batch_id: int) -> int:
        """Log and count each range the batch skipped; returns how many offsets."""
        assert self.earliest_offsets is not None
        ranges = skipped_ranges(progress, self.earliest_offsets)
        for r in ranges:
            self.metrics.offsets_skipped.labels(topic=r.topic, partition=str(r.partition)).inc(
                r.count
            )
            fields = {
                "event": "offsets_skipped",
                "query": self.query_name,
                "batch_id": batch_id,
                "topic": r.topic,
                "partition": r.partition,
                "from_offset": r.from_offset,
                "until_offset": r.until_offset,
            }
            log.warning(
                "batch %d skipped %s/%d offsets %d to %d: deleted by retention before they "
                "were read; they are in neither table",
                batch_id, r.topic, r.partition, r.from_offset, r.until_offset - 1,
                extra={FIELDS: fields},
            )  # fmt: skip
        return sum(r.count for r in ranges)
