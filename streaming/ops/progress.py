"""One structured log line per micro-batch, and the metrics of the query's progress report.

The ``foreachBatch`` function knows what it wrote (rows scored, quarantined, model version);
only the query's progress report knows how far the batch left the query behind the topic's end.
The listener joins the two by batch id, so the line's lag is that batch's own. Rates, durations
and lag per partition come from the report Spark has already built: publishing them runs no
Spark action and adds nothing to a batch.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from pyspark.sql.streaming import StreamingQueryListener

from infra.logs import FIELDS
from streaming.ops.dataloss import EarliestOffsets, partition_offsets, skipped_ranges
from streaming.ops.metrics import ServiceMetrics
from streaming.ops.outcome import BatchOutcome

__all__ = ["BatchLogListener", "offsets_behind", "partition_lag"]

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


def partition_lag(progress: dict[str, Any]) -> dict[tuple[str, int], int]:
    """Offsets behind the latest per (topic, partition) in one progress report: each Kafka
    source's ``latestOffset`` minus its ``endOffset`` (where the batch left the query)."""
    lag: dict[tuple[str, int], int] = {}
    for source in progress.get("sources", []):
        end = partition_offsets(source.get("endOffset"))
        latest = partition_offsets(source.get("latestOffset"))
        for topic, partitions in latest.items():
            for partition, newest in partitions.items():
                done = end.get(topic, {}).get(partition)
                if done is not None:
                    lag[(topic, partition)] = max(0, newest - done)
    return lag


def _read_once(progress: dict[str, Any], rows_in: int) -> dict[str, Any]:
    """``progress`` with the batch's records counted once, as the batch itself counted them.

    Spark adds up every read of the source within a batch: a batch that reads its records
    again (the quarantine append reading large rejected records, ``streaming.query.rejections``)
    is reported with its records counted twice.
    """
    sources = progress.get("sources") or []
    if len(sources) != 1:
        return {**progress, "numInputRows": rows_in}
    return {
        **progress,
        "numInputRows": rows_in,
        "sources": [{**sources[0], "numInputRows": rows_in}],
    }


class BatchLogListener(StreamingQueryListener):
    """Logs each batch of one query (by id) and publishes its progress report's metrics.

    Args:
        query_name: The query whose batches are reported.
        outcome_of: What the ``foreachBatch`` function did for a batch id, if known.
        metrics: Where rates, trigger durations and lag are published.
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
        self._newest_batch = -1
        self._query_id: str | None = None
        self._lock = threading.Lock()

    @property
    def newest_batch(self) -> int:
        """The newest batch id reported (-1 before the first)."""
        return self._newest_batch

    def onQueryStarted(self, event: Any) -> None:  # noqa: N802  (Spark's API)
        pass

    def onQueryIdle(self, event: Any) -> None:  # noqa: N802
        """No new records: the rates fall to 0 rather than keep the last batch's. Never raises."""
        try:
            if self._query_id is not None and str(event.id) == self._query_id:
                self.metrics.input_rows_per_second.set(0)
                self.metrics.processed_rows_per_second.set(0)
        except Exception:  # pragma: no cover - logged, never raised into Spark
            log.exception("could not report an idle query")

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
        when the batch was reported already, or when no batch ran: an idle trigger's report,
        which ``catch_up`` finds in ``recentProgress`` after the query stops)."""
        batch_id = int(progress.get("batchId", -1))
        if (
            not progress.get("numInputRows")
            and "addBatch" not in (progress.get("durationMs") or {})
            and self.outcome_of(batch_id) is None
        ):
            return None  # a trigger that found nothing to read (Spark's idle report): no batch ran
        with self._lock:
            if batch_id in self._reported:
                return None
            self._reported.add(batch_id)
            if len(self._reported) > _REPORTED_KEPT:
                self._reported = {b for b in self._reported if b > batch_id - _REPORTED_KEPT // 2}
        outcome = self.outcome_of(batch_id)
        if outcome is not None:
            progress = _read_once(progress, outcome.rows_in)
        lag = offsets_behind(progress)
        self._publish(progress, batch_id, lag)
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

    def _publish(self, progress: dict[str, Any], batch_id: int, lag: int | None) -> None:
        """Set the metrics of one progress report; a batch reported late (by ``catch_up``)
        adds its duration but leaves the gauges at the newer batch's values."""
        m = self.metrics
        trigger_ms = (progress.get("durationMs") or {}).get("triggerExecution")
        if trigger_ms is not None:
            m.trigger_seconds.observe(trigger_ms / 1000)
        with self._lock:
            if progress.get("id") is not None:
                self._query_id = str(progress["id"])
            if batch_id < self._newest_batch:
                return
            self._newest_batch = batch_id
        if trigger_ms is not None:
            m.last_trigger_seconds.set(trigger_ms / 1000)
        if lag is not None:
            m.offsets_behind.set(lag)
        for (topic, partition), behind in partition_lag(progress).items():
            m.partition_offsets_behind.labels(topic=topic, partition=str(partition)).set(behind)
        # Spark leaves a rate out of the report when it is not a number (no interval yet).
        for gauge, key in (
            (m.input_rows_per_second, "inputRowsPerSecond"),
            (m.processed_rows_per_second, "processedRowsPerSecond"),
        ):
            if progress.get(key) is not None:
                gauge.set(float(progress[key]))

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
