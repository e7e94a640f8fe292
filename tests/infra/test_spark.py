"""The session's defaults that keep compiled code compiled (``infra.spark``)."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F


def _compilations(spark: SparkSession) -> int:
    """How many classes Spark has compiled in this JVM (each miss of its code cache is one)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    metrics = jvm.org.apache.spark.metrics.source.CodegenMetrics
    return int(metrics.METRIC_COMPILATION_TIME().getCount())


def _wide_projection(spark: SparkSession) -> DataFrame:
    return spark.range(64).select(
        *[(F.col("id") * 7 + i).cast("string").alias(f"c{i}") for i in range(40)]
    )


def test_a_query_run_again_after_a_hundred_others_is_not_compiled_again(
    spark: SparkSession,
) -> None:
    # Spark's default cache holds 100 classes: in the benchmark the record judge's class was
    # pushed out by other work and compiled again (then run interpreted until the JIT caught up).
    query = _wide_projection(spark)
    query.collect()
    before_others = _compilations(spark)
    for i in range(150):  # each a class of its own: its literal is written into the code
        spark.range(1).select(F.col("id") + F.lit(1_000_003 * (i + 1))).collect()
    assert _compilations(spark) - before_others >= 150
    again = _compilations(spark)
    _wide_projection(spark).collect()
    assert _compilations(spark) == again
