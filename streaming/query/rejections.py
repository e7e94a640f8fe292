"""A micro-batch's rejected records, found in the pass that writes its predictions, and the rows
its quarantine append writes.

The pass counts the batch's records and its rejected ones (Spark's observed metrics), and brings
the small rejected records back, raw, with those figures: with 1 % of the records rejected, the
quarantine is written from them without reading the batch again. Their reasons are worked out
there, from the few gathered records (parsed again on the driver), not in the pass every record
goes through: carrying the reason's expression in that pass cost every batch its planning and
compiling.
A rejected record whose key and value hold more than ``record_bytes`` is only counted in the
pass; the quarantine append reads the batch again for those, restricted to the large records
before they are judged.

So the driver holds at most ``record_bytes`` for each record of the batch, whatever comes in: a
whole batch of small malformed events stays within that budget, and a producer that sends
60 KB binary blobs to the topic is quarantined through the executors, not through the
driver's memory. ``record_limit`` derives ``record_bytes`` from the batch cap. The gathered
records stay in the JVM: the quarantine rows are built there, not converted to Python objects
and back.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from streaming.parse.events import RECORD_COLUMNS, EventJudge, JudgedEvents, rejected_rows
from streaming.sink.tables import REJECTED_SCHEMA

__all__ = ["GATHER_BYTES", "RejectedRecords", "Rejections", "record_limit"]

# What a batch's gathered rejected records may hold at most on the driver (key and value bytes),
# spread over the batch cap's records. At the default cap (100,000) that is 1,006 bytes a
# record: a malformed event of the usual size comes back with the figures.
GATHER_BYTES = 96 * 1024 * 1024
_KIND_SEPARATOR = ","  # no error kind contains it
# A gathered record: its own columns, as the quarantine row keeps them.
_RECORD_SCHEMA = StructType([f for f in REJECTED_SCHEMA.fields if f.name in RECORD_COLUMNS])


def record_limit(max_records: int) -> int:
    """The largest rejected record (key and value bytes) gathered on the driver, for batches of
    at most ``max_records`` records."""
    return GATHER_BYTES // max(1, max_records)


@dataclass(frozen=True)
class Rejections:
    """What the pass over one batch found.

    Attributes:
        rows_in: Records in the batch.
        count: Rejected records in the batch.
        gathered: The small rejected records, raw (a JVM ``java.util.List`` of rows of the
            record's own columns, ``RECORD_COLUMNS``), or ``None`` when there is none.
        left_out: Rejected records too large to be gathered: read again from the batch.
    """

    rows_in: int
    count: int
    gathered: Any
    left_out: int


class RejectedRecords:
    """The aggregate a batch's pass computes, and the quarantine rows built from its result.

    Args:
        record_bytes: A rejected record with more key and value bytes is not gathered.
    """

    def __init__(self, record_bytes: int) -> None:
        self.record_bytes = record_bytes
        rejected = ~F.col("_ok")
        size = F.coalesce(F.octet_length("key"), F.lit(0)) + F.coalesce(
            F.octet_length("value"), F.lit(0)
        )
        # On the raw columns, so that the second read can be restricted before the judge runs.
        self._large = size > F.lit(record_bytes)
        # Observed metrics are evaluated for every record, the collection without code
        # generation: a record that is not rejected is settled by its first test.
        self.columns: tuple[Column, ...] = (
            F.count(F.lit(1)).alias("rows_in"),
            F.count_if(rejected).alias("rejected"),
            F.collect_list(F.when(rejected & ~self._large, F.struct(*RECORD_COLUMNS))).alias(
                "gathered"
            ),
        )
        self._kinds = F.array_join(F.collect_list("error_kind"), _KIND_SEPARATOR).alias("kinds")

    def read(self, row: Any) -> Rejections:
        """The figures in ``row``, a JVM ``Row`` of :attr:`columns` (an observation's result or
        the aggregate's first row), read without converting the gathered records."""
        gathered = row.getList(2)
        size = int(gathered.size())
        count = int(row.getLong(1))
        return Rejections(
            rows_in=int(row.getLong(0)),
            count=count,
            gathered=gathered if size else None,
            left_out=count - size,
        )

    def observed(self, observation: Observation) -> Rejections:
        """The figures of an observation of :attr:`columns`, once its pass has run."""
        return self.read(_result(observation))

    def of(self, judged: JudgedEvents) -> Rejections:
        """Count and gather ``judged``'s rejected records in a pass of their own (a batch whose
        predictions are written already)."""
        aggregate = judged.frame.agg(*self.columns)
        return self.read(aggregate._jdf.first())

    def rows(self, judge: EventJudge, judged: JudgedEvents, found: Rejections) -> DataFrame | None:
        """The batch's rejected records with their reasons (``REJECTED_SCHEMA``), ``None`` when
        there is none: the gathered ones, their reasons worked out on the driver by ``judge``
        (the judge of ``judged``), and those left out, read again from ``judged``."""
        parts: list[DataFrame] = []
        if found.gathered is not None:
            parts.append(judge.rejected(_local_frame(judged.frame.sparkSession, found.gathered)))
        if found.left_out:
            parts.append(rejected_rows(replace(judged, frame=judged.frame.where(self._large))))
        if not parts:
            return None
        rows = parts[0]
        for part in parts[1:]:
            rows = rows.unionByName(part)
        return rows

    def counted(self, rows: DataFrame) -> tuple[DataFrame, Observation]:
        """``rows`` (``REJECTED_SCHEMA``) observed for their error kinds: read them with
        :meth:`kinds` once the rows have been written."""
        observation = Observation()
        return rows.observe(observation, self._kinds), observation

    def kinds(self, observation: Observation) -> Counter[str]:
        """The error kinds an observation of :meth:`counted` saw, with their counts."""
        return _split_kinds(_result(observation).getString(0))

    def kinds_of(self, rows: DataFrame) -> Counter[str]:
        """The error kinds of ``rows`` (``REJECTED_SCHEMA``), in a job of their own."""
        return _split_kinds(rows.agg(self._kinds)._jdf.first().getString(0))


def _result(observation: Observation) -> Any:
    java = observation._jo
    if java is None:
        raise RuntimeError("the observation was not attached to the plan")
    return java.getRow()


def _split_kinds(text: str | None) -> Counter[str]:
    return Counter(text.split(_KIND_SEPARATOR) if text else [])


def _local_frame(spark: SparkSession, rows: Any) -> DataFrame:
    """A DataFrame of gathered records (JVM rows of ``RECORD_COLUMNS``), built in the JVM."""
    jspark = spark._jsparkSession
    schema = jspark.parseDataType(_RECORD_SCHEMA.json())
    return DataFrame(jspark.createDataFrame(rows, schema), spark)
