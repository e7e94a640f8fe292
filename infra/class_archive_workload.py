"""The workload whose classes go into the driver's class archive (see :mod:`infra.class_archive`).

Run as ``python -m infra.class_archive_workload JARS_CACHE ARCHIVE``, in a scratch folder; exits
once its JVM has written ``ARCHIVE`` and ended.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from infra.spark import DRIVER_JAVA_OPTIONS, build_spark_session

_STREAM_TIMEOUT_S = 120


def _workload(spark: object, work: Path) -> None:
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.ml.feature import Imputer, StringIndexer, VectorAssembler
    from pyspark.ml.regression import RandomForestRegressor
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql import functions as F

    assert isinstance(spark, SparkSession)
    rows = [(f'{{"kind": "k{i % 3}", "size": {i}.5, "n": {i}}}', float(i)) for i in range(60)]
    raw = spark.createDataFrame(rows, "value string, label double")
    parsed = raw.select(
        F.from_json("value", "kind string, size double, n long").alias("j"), "label"
    ).select("j.*", "label")
    stages: list[Any] = [
        StringIndexer(inputCol="kind", outputCol="kind_index", handleInvalid="keep"),
        Imputer(inputCols=["size"], outputCols=["size_filled"]),
        VectorAssembler(inputCols=["kind_index", "size_filled"], outputCol="features"),
        RandomForestRegressor(featuresCol="features", labelCol="label", numTrees=3, maxDepth=3),
    ]
    Pipeline(stages=stages).fit(parsed).write().overwrite().save(str(work / "model"))
    model = PipelineModel.load(str(work / "model"))

    table = str(work / "table")
    scored = model.transform(parsed).select("kind", "prediction", F.current_date().alias("day"))
    scored.write.format("delta").partitionBy("day").option("userMetadata", "{}").save(table)
    spark.read.format("delta").load(table).where("day = current_date()").count()
    from delta.tables import DeltaTable

    DeltaTable.forPath(spark, table).history(5).collect()

    def batch(frame: DataFrame, batch_id: int) -> None:
        frame.write.format("delta").mode("append").option("txnAppId", "archive").option(
            "txnVersion", batch_id
        ).save(table)

    stream = (
        spark.readStream.format("rate").option("rowsPerSecond", 10).load()
        .select(F.col("value").cast("string").alias("kind"), F.lit(1.0).alias("prediction"),
                F.current_date().alias("day"))
    )  # fmt: skip
    query = (
        stream.writeStream.foreachBatch(batch)
        .option("checkpointLocation", str(work / "checkpoint"))
        .trigger(processingTime="1 second")
        .start()
    )
    # Two batches that read rows, then stop. Not processAllAvailable(): a rate source has new
    # rows every second, so it can wait for ever.
    deadline = time.monotonic() + _STREAM_TIMEOUT_S
    while sum(1 for p in query.recentProgress if p["numInputRows"] > 0) < 2:
        if time.monotonic() > deadline or not query.isActive:
            break
        time.sleep(0.25)
    query.stop()
    # The Kafka source's classes, without a broker: the source is planned, not started.
    spark.readStream.format("kafka").option("subscribe", "t").option(
        "kafka.bootstrap.servers", "127.0.0.1:9"
    ).load()


def main(argv: list[str]) -> int:
    jars_cache, archive = Path(argv[0]), Path(argv[1])
    options = f"{DRIVER_JAVA_OPTIONS} -XX:ArchiveClassesAtExit={archive} -Xlog:cds=off"
    spark = build_spark_session(
        "class-archive",
        jars_cache,
        master="local[2]",
        extra_conf={"spark.driver.defaultJavaOptions": options, "spark.ui.enabled": "false"},
        class_archive=False,
    )
    spark.sparkContext.setLogLevel("ERROR")
    gateway = spark.sparkContext._gateway
    with tempfile.TemporaryDirectory(prefix="workload-") as work:
        _workload(spark, Path(work))
        spark.stop()
    # The JVM writes the archive as it exits, which it does once this process closes its end.
    process = gateway.proc  # type: ignore[union-attr]
    process.stdin.close()
    process.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
