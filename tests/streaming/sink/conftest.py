"""Predictions rows written through the project's ``DeltaSink``, without a stream or a model."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import SparkSession

from streaming.sink.delta import BatchRecord, DeltaSink
from streaming.sink.tables import PREDICTIONS_SCHEMA

AT = datetime(2026, 11, 26, 12, 0, 0)


def append_predictions(
    spark: SparkSession, sink: DeltaSink, batch_id: int, offsets: range, at: datetime = AT
) -> None:
    """Append one batch of predictions rows (offsets alternate between partitions 0 and 1).

    Every row's event time, Kafka timestamp and scoring time is ``at``; its ``event_date`` is
    the day of ``at``.
    """
    rows = [
        (f"e-{o}", f"k-{o}", None, at, float(o), None, "m", "1", "run", "listings", o % 2, o,
         at, batch_id, at, at.date())
        for o in offsets
    ]  # fmt: skip
    sink.append(
        spark.createDataFrame(rows, PREDICTIONS_SCHEMA), BatchRecord(sink.app_id, batch_id, "1")
    )
