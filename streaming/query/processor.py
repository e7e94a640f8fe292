"""The ``foreachBatch`` seam: one micro-batch of Kafka records in, two idempotent appends out.

Callable on its own as ``processor(records, batch_id)``, with no stream at all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from pyspark.sql import DataFrame

from streaming.ops.metrics import ServiceMetrics
from streaming.ops.outcome import BatchOutcome
from streaming.parse.events import parse_events
from streaming.score.model import LoadedModel
from streaming.sink.delta import BatchRecord
from streaming.sink.tables import predictions_rows, quarantine_rows

__all__ = ["BatchSink", "MicroBatchProcessor", "ModelSource"]

_OUTCOMES_KEPT = 32

log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class ModelSource(Protocol):
    """Gives the model for each batch (``ModelProvider``; an in-memory stand-in in tests)."""

    metrics: ServiceMetrics

    def for_batch(self, batch_id: int) -> LoadedModel: ...

    def version(self, version: str) -> LoadedModel: ...


class BatchSink(Protocol):
    """Appends one batch's rows idempotently (``DeltaSink``; a stand-in in tests)."""

    app_id: str

    def append(self, rows: DataFrame, record: BatchRecord) -> None: ...


class MicroBatchProcessor:
    """Parse, score and write one micro-batch; every Kafka offset to exactly one table.

    Args:
        models: Gives the model for each batch (it follows the alias between batches).
        predictions: Sink of scored rows; written for every batch, even an empty one, so the
            table records each batch id (the start-up check relies on it).
        quarantine: Sink of rejected records, written when a batch has any.
        metrics: Service metrics.
        replay: A batch begun before a restart, re-run with the model version it began with.
        clock: The scored-at time; injectable for tests.
    """

    def __init__(
        self,
        models: ModelSource,
        predictions: BatchSink,
        quarantine: BatchSink,
        metrics: ServiceMetrics | None = None,
        replay: BatchRecord | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.models = models
        self.predictions = predictions
        self.quarantine = quarantine
        self.metrics = metrics or models.metrics
        self.replay = replay
        self.clock = clock
        self.in_flight = threading.Event()
        self.last: BatchOutcome | None = None
        self._outcomes: dict[int, BatchOutcome] = {}

    def _model_for(self, batch_id: int) -> LoadedModel:
        replay = self.replay
        if replay is not None and replay.batch_id == batch_id and replay.model_version is not None:
            return self.models.version(replay.model_version)
        return self.models.for_batch(batch_id)

    def __call__(self, records: DataFrame, batch_id: int) -> BatchOutcome:
        """Process one batch.

        Raises:
            Whatever the Delta writes raise (disk full, storage gone): the batch fails, the
            query stops, and a restart replays it from the checkpoint without duplicates.
            Record content never raises: bad records go to the quarantine table.
        """
        self.in_flight.set()
        started = time.monotonic()
        try:
            model = self._model_for(batch_id)
            cached = records.persist()
            try:
                outcome = self._write(cached, batch_id, model, started)
            finally:
                cached.unpersist()
        finally:
            self.in_flight.clear()
        self.last = outcome
        self._outcomes[batch_id] = outcome
        for old in sorted(self._outcomes)[:-_OUTCOMES_KEPT]:
            del self._outcomes[old]
        self._record(outcome)
        return outcome

    def outcome(self, batch_id: int) -> BatchOutcome | None:
        """What batch ``batch_id`` did, for one of the recent batches."""
        return self._outcomes.get(batch_id)

    def process(self, records: DataFrame, batch_id: int) -> None:
        """The ``foreachBatch`` function: process one batch, keep the outcome on ``last``."""
        self(records, batch_id)

    def _write(
        self, records: DataFrame, batch_id: int, model: LoadedModel, started: float
    ) -> BatchOutcome:
        now = self.clock()
        parsed = parse_events(records, model.schema)
        version = model.identity.version

        rejected = quarantine_rows(parsed.quarantined, batch_id, now).persist()
        try:
            kinds = {
                r.error_kind: r["count"] for r in rejected.groupBy("error_kind").count().collect()
            }
            quarantined = sum(kinds.values())
            if quarantined:
                record = BatchRecord(self.quarantine.app_id, batch_id, version, quarantined)
                self.quarantine.append(rejected, record)
        finally:
            rejected.unpersist()

        scored = predictions_rows(
            model.score(parsed.valid), model.identity, batch_id, now
        ).persist()
        try:
            written = scored.count()
            self.predictions.append(
                scored, BatchRecord(self.predictions.app_id, batch_id, version, written)
            )
        finally:
            scored.unpersist()

        for kind, count in kinds.items():
            self.metrics.quarantined.labels(error_kind=kind).inc(count)
        return BatchOutcome(
            batch_id=batch_id,
            rows_in=written + quarantined,
            predictions=written,
            quarantined=quarantined,
            model_version=version,
            duration_s=round(time.monotonic() - started, 3),
        )

    def _record(self, outcome: BatchOutcome) -> None:
        m = self.metrics
        m.batches.inc()
        m.records_in.inc(outcome.rows_in)
        m.predictions.inc(outcome.predictions)
        m.last_batch_id.set(outcome.batch_id)
        m.last_batch_seconds.set(outcome.duration_s)
