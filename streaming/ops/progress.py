"""One structured log line per micro-batch, written when Spark reports the batch's progress.

The ``foreachBatch`` function knows what it wrote (rows scored, quarantined, model version);
only the query's progress report knows how far the batch left the query behind the topic's end.
The listener joins the two by batch id, so the line's lag is that batch's own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from pyspark.sql.streaming import StreamingQueryListener

from infra.logs import FIELDS
from streaming.ops.metrics import ServiceMetrics
from streaming.ops.outcome import BatchOutcome

__all__ = ["BatchLogListener", "offsets_behind"]

log = logging.getLogger("streaming.batch")


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
    """

    def __init__(
        self,
        query_name: str,
        outcome_of: Callable[[int], BatchOutcome | None],
        metrics: ServiceMetrics,
    ) -> None:
        self.query_name = query_name
        self.outcome_of = outcome_of
        self.metrics = metrics

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

    def report(self, progress: dict[str, Any]) -> dict[str, Any]:
        """Log the line for one progress report; returns its fields."""
        batch_id = int(progress.get("batchId", -1))
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
        log.info("batch %d", batch_id, extra={FIELDS: fields})
        return fields
