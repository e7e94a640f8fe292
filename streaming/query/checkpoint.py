"""Compare a query's checkpoint with what its tables hold, before the query starts.

Every batch the query runs appends one commit to the predictions table (possibly with no
rows), so the table's newest batch must equal the checkpoint's last committed batch, or the
batch planned after it (a crash between the write and the checkpoint commit). Anything else
means one of them was deleted, restored or swapped, and starting would skip or duplicate rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import SparkSession

from streaming.errors import CheckpointMismatchError
from streaming.sink.delta import BatchRecord

__all__ = ["CheckpointState", "StartPlan", "plan_start", "read_checkpoint_state"]


@dataclass(frozen=True)
class CheckpointState:
    """Newest batch ids in the checkpoint's ``offsets`` (planned) and ``commits`` (done) logs."""

    planned: int | None
    committed: int | None


@dataclass(frozen=True)
class StartPlan:
    """What the first batch after start must respect.

    ``replay`` is the batch already (partly) written before a crash, with the model version it
    was written with, so that it is re-run with the same version.
    """

    replay: BatchRecord | None


def _newest_batch(spark: SparkSession, directory: str) -> int | None:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    path = jvm.org.apache.hadoop.fs.Path(directory)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.exists(path):
        return None
    ids = [
        int(status.getPath().getName())
        for status in fs.listStatus(path)
        if status.getPath().getName().isdigit()
    ]
    return max(ids) if ids else None


def read_checkpoint_state(spark: SparkSession, checkpoint: str) -> CheckpointState:
    """Read the newest planned and committed batch ids (any Hadoop file system)."""
    root = checkpoint.rstrip("/")
    return CheckpointState(
        planned=_newest_batch(spark, f"{root}/offsets"),
        committed=_newest_batch(spark, f"{root}/commits"),
    )


def plan_start(
    state: CheckpointState,
    predictions: BatchRecord | None,
    quarantine: BatchRecord | None,
    checkpoint: str,
    predictions_table: str,
) -> StartPlan:
    """Decide whether the query may start from this checkpoint onto these tables.

    Raises:
        CheckpointMismatchError: they disagree; the message says which way and what to do.
    """
    newest_table = predictions.batch_id if predictions else None
    planned = state.planned if state.planned is not None else state.committed
    allowed = {state.committed, planned}
    if newest_table not in allowed:
        if state.committed is None and planned is None:
            raise CheckpointMismatchError(
                f"checkpoint {checkpoint} is empty but table {predictions_table} already holds "
                f"batches up to {newest_table} from this query: restore the checkpoint, or use a "
                "new --query-name with new tables"
            )
        if newest_table is None:
            raise CheckpointMismatchError(
                f"checkpoint {checkpoint} has committed batch {state.committed} but table "
                f"{predictions_table} holds none of this query's batches: restore the table, or "
                "delete the checkpoint to start over"
            )
        direction = "behind" if newest_table < (state.committed or 0) else "ahead of"
        raise CheckpointMismatchError(
            f"table {predictions_table} (batch {newest_table}) is {direction} checkpoint "
            f"{checkpoint} (batch {state.committed}): restore the matching checkpoint or table"
        )
    if quarantine is not None and planned is not None and quarantine.batch_id > planned:
        raise CheckpointMismatchError(
            f"the quarantine table holds batch {quarantine.batch_id}, ahead of checkpoint "
            f"{checkpoint} (batch {planned}): restore the matching checkpoint or table"
        )
    replay = None
    if planned is not None and planned != state.committed:
        for record in (predictions, quarantine):
            if record is not None and record.batch_id == planned:
                replay = record
                break
    return StartPlan(replay=replay)
