"""The ``foreachBatch`` seam: one micro-batch of Kafka records in, two idempotent appends out.

Callable on its own as ``processor(records, batch_id)``, with no stream at all.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol

from pyspark.sql import DataFrame, Observation
from pyspark.sql import functions as F

from streaming.ops.metrics import ServiceMetrics
from streaming.ops.outcome import BatchOutcome
from streaming.parse.events import (
    VERDICT_COLUMNS,
    EventJudge,
    JudgedEvents,
    ParseRules,
    valid_rows,
)
from streaming.query.rejections import RejectedRecords, Rejections, record_limit
from streaming.score.identity import ModelIdentity
from streaming.score.model import LoadedModel
from streaming.sink.delta import BatchRecord
from streaming.sink.tables import predictions_rows, quarantine_rows

__all__ = ["BatchSink", "JudgeCache", "MicroBatchProcessor", "ModelSource"]

_OUTCOMES_KEPT = 32
_JUDGES_KEPT = 4  # the serving version, a replayed batch's version, a swap's new one
_DEFAULT_MAX_RECORDS = 100_000  # the service's default batch cap

log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class ModelSource(Protocol):
    """Gives the model for each batch (``ModelProvider``; an in-memory stand-in in tests)."""

    metrics: ServiceMetrics

    def for_batch(self, batch_id: int) -> LoadedModel: ...

    def version(self, version: str) -> LoadedModel: ...


class BatchSink(Protocol):
    """Appends one batch's rows idempotently (``DeltaSink``; a stand-in in tests).

    ``append`` must read ``rows`` (run the plan) unless it raises: the figures of the batch
    come from that one pass. A ``guarded`` append is skipped when the batch is in the table
    already; an unguarded one is for a batch the caller knows is new.
    """

    app_id: str

    def append(self, rows: DataFrame, record: BatchRecord, guarded: bool = True) -> None: ...

    def has_batch(self, batch_id: int) -> bool: ...


class JudgeCache:
    """The record judge of each model version, built once (building one is the costly part on
    the driver, a second or more for a wide model; applying it to a batch is two projections).

    ``for_model`` is safe to call from the thread that loads a new version, so that the judge
    is ready before the batch that first uses it.
    """

    def __init__(self, rules: ParseRules | None = None) -> None:
        self.rules = rules or ParseRules()
        self._judges: dict[ModelIdentity, EventJudge] = {}
        self._lock = threading.Lock()

    def for_model(self, model: LoadedModel) -> EventJudge:
        with self._lock:
            judge = self._judges.get(model.identity)
        if judge is not None and judge.schema == model.schema:
            return judge
        judge = EventJudge(model.schema, self.rules, model.profile)
        with self._lock:
            while len(self._judges) >= _JUDGES_KEPT:  # the oldest goes
                del self._judges[next(iter(self._judges))]
            self._judges[model.identity] = judge
        return judge


class MicroBatchProcessor:
    """Parse, score and write one micro-batch; every Kafka offset to exactly one table.

    Args:
        models: Gives the model for each batch (it follows the alias between batches).
        predictions: Sink of scored rows; written for every batch, even an empty one, so the
            table records each batch id (the start-up check relies on it).
        quarantine: Sink of rejected records, written when a batch has any.
        metrics: Service metrics.
        replay: A batch begun before a restart, re-run with the model version it began with.
        committed_through: The newest batch id the predictions table held at start: a batch
            up to it has its predictions already, and only what else is missing is written.
        begun_through: The newest batch id the checkpoint had planned at start. Up to it, a
            batch may have been begun by an earlier run, so its writes are guarded by Delta's
            own transaction check; a later batch was planned by this run (Spark creates the
            offset-log entry of a batch once) and is new to both tables, as the processor
            tracks, so its writes skip that check (a snapshot-state job per commit).
        clock: The scored-at time; injectable for tests.
        rules: How records are judged (value size limit, profile policies); each batch is
            judged against its model's signature and data profile.
        judges: Where the judges of the model versions are kept (one built from ``rules``
            when not given); pass the one the model loader also fills.
        stream_judge: The judge whose verdicts the stream's own plan adds to each batch
            (:meth:`EventJudge.judge`, from ``judges``), or ``None`` when the batches come
            as Kafka records. A batch whose model has another judge is judged in the batch,
            and ``restart_wanted`` is set: the query should be started again with that judge.
        max_records: The most records a batch holds (the batch cap). The driver gathers a
            batch's rejected records up to a size that keeps them within a fixed budget at
            this many (:mod:`streaming.query.rejections`); larger ones are read again.
    """

    def __init__(
        self,
        models: ModelSource,
        predictions: BatchSink,
        quarantine: BatchSink,
        metrics: ServiceMetrics | None = None,
        replay: BatchRecord | None = None,
        committed_through: int | None = None,
        begun_through: int | None = None,
        clock: Callable[[], datetime] = _utc_now,
        rules: ParseRules | None = None,
        judges: JudgeCache | None = None,
        after_batch: Callable[[BatchOutcome], None] | None = None,
        stream_judge: EventJudge | None = None,
        max_records: int = _DEFAULT_MAX_RECORDS,
    ) -> None:
        self.models = models
        self.predictions = predictions
        self.quarantine = quarantine
        self.metrics = metrics or models.metrics
        self.replay = replay
        self.committed_through = -1 if committed_through is None else committed_through
        self.begun_through = -1 if begun_through is None else begun_through
        self.clock = clock
        self.judges = judges or JudgeCache(rules)
        self.after_batch = after_batch
        self.stream_judge = stream_judge
        self.rejected = RejectedRecords(record_limit(max_records))
        self.restart_wanted = threading.Event()
        self.in_flight = threading.Event()
        self.last: BatchOutcome | None = None
        self._outcomes: dict[int, BatchOutcome] = {}

    def _judge(self, model: LoadedModel) -> EventJudge:
        return self.judges.for_model(model)

    def _judged(self, records: DataFrame, model: LoadedModel, batch_id: int) -> JudgedEvents:
        """The batch's records with the verdicts of ``model``'s judge (``_ok``, ...).

        When the stream's own plan judged them with that judge (``stream_judge``), they are
        used as they come: the judge was analysed once, when the query started, instead of
        once per batch. Otherwise (no judge in the stream's plan; a batch scored by another
        version than the stream was started with) they are judged here, from their Kafka
        columns, and the batch says that the query should be started again with this judge.
        """
        judge = self._judge(model)
        if self.stream_judge is None:
            return judge.judge(records)
        if judge is self.stream_judge:
            return judge.judged(records)
        replay = self.replay
        if replay is None or replay.batch_id != batch_id:  # a new version serves from now on
            self.restart_wanted.set()
        log.info("batch %d: judged in the batch, for model version %s", batch_id, model.identity)
        return judge.judge(records.drop(*VERDICT_COLUMNS))

    def _model_for(self, batch_id: int) -> LoadedModel:
        replay = self.replay
        if replay is not None and replay.batch_id == batch_id and replay.model_version is not None:
            return self.models.version(replay.model_version)
        return self.models.for_batch(batch_id)

    def __call__(self, records: DataFrame, batch_id: int) -> BatchOutcome:
        """Process one batch: one pass over the records, one commit per table that gets rows.

        The records are read once, while the predictions are written; the figures and the few
        rejected records come back from that same pass (Spark's observed metrics), so nothing
        is cached or counted. The quarantine table is written only when the batch had bad
        records; their reasons are worked out there, from the records gathered. A batch begun
        before a restart is re-run with the model version it began with, and what its first
        run already committed is not written again.

        Raises:
            Whatever the Delta writes raise (disk full, storage gone): the batch fails, the
            query stops, and a restart replays it from the checkpoint without duplicates.
            Record content never raises: bad records go to the quarantine table.
        """
        self.in_flight.set()
        started = time.monotonic()
        try:
            model = self._model_for(batch_id)
            if batch_id <= self.committed_through:
                outcome = self._complete_replay(records, batch_id, model, started)
            else:
                outcome = self._write(records, batch_id, model, started)
                self.committed_through = batch_id
        finally:
            self.in_flight.clear()
        self.last = outcome
        self._outcomes[batch_id] = outcome
        for old in sorted(self._outcomes)[:-_OUTCOMES_KEPT]:
            del self._outcomes[old]
        self._record(outcome)
        if self.after_batch is not None:
            self.after_batch(outcome)
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
        version = model.identity.version
        judged = self._judged(records, model, batch_id)
        observation = Observation(f"batch_{batch_id}_{uuid.uuid4().hex}")
        observed = replace(judged, frame=judged.frame.observe(observation, *self.rejected.columns))
        # The batch's lineage (batch id, scored-at) enters the plan as literals that Spark writes
        # into its generated code. The observation below is a stage boundary: the compiled
        # parse-and-score code is then the same for every batch and compiled once, and only the
        # small projection that adds the lineage is compiled per batch.
        boundary = Observation(f"scored_{batch_id}_{uuid.uuid4().hex}")
        scored = predictions_rows(
            model.score(valid_rows(observed)).observe(boundary, F.count(F.lit(1)).alias("rows")),
            model.identity,
            batch_id,
            now,
        )
        guarded = batch_id <= self.begun_through
        self.predictions.append(
            scored, BatchRecord(self.predictions.app_id, batch_id, version, None), guarded
        )
        found = self.rejected.observed(observation)
        kinds = self._quarantine(self._judge(model), judged, found, batch_id, version, now, guarded)
        return self._outcome(batch_id, found, kinds, version, started)

    def _quarantine(
        self,
        judge: EventJudge,
        judged: JudgedEvents,
        found: Rejections,
        batch_id: int,
        version: str | None,
        at: datetime,
        guarded: bool = True,
        written: bool = False,
    ) -> Counter[str]:
        """Append the batch's rejected records to the quarantine table, when it has any and
        they are not ``written`` already; return their error kinds."""
        rows = self.rejected.rows(judge, judged, found)
        if rows is None:
            return Counter()
        if written:
            return self.rejected.kinds_of(rows)
        counted, observation = self.rejected.counted(quarantine_rows(rows, batch_id, at))
        self.quarantine.append(
            counted, BatchRecord(self.quarantine.app_id, batch_id, version, found.count), guarded
        )
        return self.rejected.kinds(observation)

    def _complete_replay(
        self, records: DataFrame, batch_id: int, model: LoadedModel, started: float
    ) -> BatchOutcome:
        """A batch whose predictions were committed before a crash: write what is missing."""
        version = model.identity.version
        judged = self._judged(records, model, batch_id)
        found = self.rejected.of(judged)  # one pass: the records counted, rejected ones gathered
        written = bool(found.count) and self.quarantine.has_batch(batch_id)
        at = self.clock()
        kinds = self._quarantine(
            self._judge(model), judged, found, batch_id, version, at, written=written
        )
        log.info("batch %d: predictions were committed before the restart", batch_id)
        return self._outcome(batch_id, found, kinds, version, started)

    def _outcome(
        self,
        batch_id: int,
        found: Rejections,
        kinds: Counter[str],
        version: str | None,
        started: float,
    ) -> BatchOutcome:
        for kind, count in kinds.items():
            self.metrics.quarantined.labels(error_kind=kind).inc(count)
        return BatchOutcome(
            batch_id=batch_id,
            rows_in=found.rows_in,
            predictions=found.rows_in - found.count,
            quarantined=found.count,
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
