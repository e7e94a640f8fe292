"""A micro-batch's rejected records, found in the pass that writes its predictions, and the rows
its quarantine append writes.

The pass counts the batch's records and its rejected ones (Spark's observed metrics), and brings
the small rejected records back with those figures: with 1 % of the records rejected, the
quarantine is written from them without reading the batch again. A rejected record whose key
and value hold more than ``record_bytes`` is only counted there; the quarantine append reads
the batch again for those, restricted to the large records before they are judged.

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

from streaming.parse.events import JudgedEvents, rejected_rows
from streaming.sink.tables import REJECTED_SCHEMA

__all__ = ["GATHER_BYTES", "RejectedRecords", "Rejections", "record_limit"]

# What a batch's gathered rejected records may hold at most on the driver (key and value bytes),
# spread over the batch cap's records. At the default cap (100,000) that is 1,006 bytes a
# record: a malformed event of the usual size comes back with the figures.
GATHER_BYTES = 96 * 1024 * 1024
_KIND_SEPARATOR = ","  # no error kind contains it


def record_limit(max_records: int) -> int:
    """The largest rejected record (key and value bytes) gathered on the driver, for batches of
    at most ``max_records`` records."""
    return GATHER_BYTES // max(1, max_records)


@dataclass(frozen=True)
class Rejections:
    """What the pass over one batch found.

    Attributes:
        rows_in: Records in the batch.
        kinds: The error kind of each rejected record.
        gathered: The small rejected records (a JVM ``java.util.List`` of rows of
            ``REJECTED_SCHEMA``), or ``None`` when there is none.
        left_out: Rejected records too large to be gathered: read again from the batch.
    """

    rows_in: int
    kinds: list[str]
    gathered: Any
    left_out: int

    @property
    def count(self) -> int:
        return len(self.kinds)

    def by_kind(self) -> Counter[str]:
        return Counter(self.kinds)


class RejectedRecords:
    """The aggregate a batch's pass computes, and the quarantine rows built from its result.

    Args:
        record_bytes: A rejected record with more key and value bytes is not gathered.
    """

    def __init__(self, record_bytes: int) -> None:
        self.record_bytes = record_bytes
        rejected = F.col("_rejected")
        size = F.coalesce(F.octet_length("key"), F.lit(0)) + F.coalesce(
            F.octet_length("value"), F.lit(0)
        )
        # On the raw columns, so that the second read can be restricted before the judge runs.
        self._large = size > F.lit(record_bytes)
        # Observed metrics are evaluated for every record, the collections without code
        # generation: a record that is not rejected is settled by its first test. Each
        # aggregate here is computed on its own (Spark does not share one between two
        # expressions), so the records left out are counted as the kinds not gathered.
        self.columns: tuple[Column, ...] = (
            F.count(F.lit(1)).alias("rows_in"),
            F.array_join(F.collect_list(rejected["error_kind"]), _KIND_SEPARATOR).alias("kinds"),
            F.collect_list(F.when(rejected.isNotNull() & ~self._large, rejected)).alias("gathered"),
        )

    def read(self, row: Any) -> Rejections:
        """The figures in ``row``, a JVM ``Row`` of :attr:`columns` (an observation's result or
        the aggregate's first row), read without converting the gathered records."""
        text = row.getString(1) or ""
        kinds = text.split(_KIND_SEPARATOR) if text else []
        gathered = row.getList(2)
        count = int(gathered.size())
        return Rejections(
            rows_in=int(row.getLong(0)),
            kinds=kinds,
            gathered=gathered if count else None,
            left_out=len(kinds) - count,
        )

    def observed(self, observation: Observation) -> Rejections:
        """The figures of an observation of :attr:`columns`, once its pass has run."""
        java = observation._jo
        if java is None:
            raise RuntimeError("the observation was not attached to the batch's plan")
        return self.read(java.getRow())

    def of(self, judged: JudgedEvents) -> Rejections:
        """Count and gather ``judged``'s rejected records in a pass of their own (a batch whose
        predictions are written already)."""
        aggregate = judged.frame.agg(*self.columns)
        return self.read(aggregate._jdf.first())

    def rows(self, judged: JudgedEvents, found: Rejections) -> DataFrame | None:
        """The batch's rejected records (``REJECTED_SCHEMA``), ``None`` when there is none: the
        gathered ones, and those left out, read again from ``judged``."""
        spark = judged.frame.sparkSession
        parts: list[DataFrame] = []
        if found.gathered is not None:
            parts.append(_local_frame(spark, found.gathered))
        if found.left_out:
            parts.append(rejected_rows(replace(judged, frame=judged.frame.where(self._large))))
        if not parts:
            return None
        rows = parts[0]
        for part in parts[1:]:
            rows = rows.unionByName(part)
        return rows


def _local_frame(spark: SparkSession, rows: Any) -> DataFrame:
    """A DataFrame of JVM rows of ``REJECTED_SCHEMA``, built in the JVM."""
    jspark = spark._jsparkSession
    schema = jspark.parseDataType(REJECTED_SCHEMA.json())
    return DataFrame(jspark.createDataFrame(rows, schema), spark)
