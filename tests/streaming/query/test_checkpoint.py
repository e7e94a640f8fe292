"""Start planning: when a checkpoint and the tables may go on together, and when they may not."""

from __future__ import annotations

import pytest

from streaming.errors import CheckpointMismatchError
from streaming.query.checkpoint import CheckpointState, plan_start
from streaming.sink.delta import BatchRecord

APP = "streaming-inference:q"


def record(batch_id: int, version: str = "1") -> BatchRecord:
    return BatchRecord(app_id=APP, batch_id=batch_id, model_version=version, rows=10)


def plan(
    state: CheckpointState, predictions: BatchRecord | None, quarantine: BatchRecord | None = None
):  # type: ignore[no-untyped-def]
    return plan_start(state, predictions, quarantine, "ckpt", "preds")


def test_a_fresh_start_has_nothing_to_replay() -> None:
    assert plan(CheckpointState(planned=None, committed=None), None).replay is None


def test_tables_at_the_committed_batch_start_cleanly() -> None:
    assert plan(CheckpointState(planned=4, committed=4), record(4), record(2)).replay is None


def test_a_batch_written_but_not_committed_is_replayed_with_its_model_version() -> None:
    started = plan(CheckpointState(planned=5, committed=4), record(5, version="3"))
    assert started.replay == record(5, version="3")


def test_a_batch_whose_quarantine_landed_first_is_replayed_with_that_version() -> None:
    started = plan(CheckpointState(planned=5, committed=4), record(4), record(5, version="2"))
    assert started.replay == record(5, version="2")


def test_a_planned_batch_that_wrote_nothing_yet_is_not_a_replay() -> None:
    assert plan(CheckpointState(planned=5, committed=4), record(4)).replay is None


def test_an_empty_checkpoint_next_to_written_tables_is_refused() -> None:
    with pytest.raises(CheckpointMismatchError, match="checkpoint ckpt is empty but table preds"):
        plan(CheckpointState(planned=None, committed=None), record(3))


def test_a_checkpoint_without_its_table_is_refused() -> None:
    with pytest.raises(CheckpointMismatchError, match="holds none of this query's batches"):
        plan(CheckpointState(planned=3, committed=3), None)


@pytest.mark.parametrize(("table_batch", "word"), [(1, "behind"), (9, "ahead of")])
def test_a_table_from_another_point_in_time_is_refused(table_batch: int, word: str) -> None:
    with pytest.raises(CheckpointMismatchError, match=word):
        plan(CheckpointState(planned=5, committed=5), record(table_batch))


def test_a_quarantine_table_ahead_of_the_checkpoint_is_refused() -> None:
    with pytest.raises(CheckpointMismatchError, match="quarantine table holds batch 8"):
        plan(CheckpointState(planned=5, committed=5), record(5), record(8))
