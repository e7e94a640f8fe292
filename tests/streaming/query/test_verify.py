"""The verifier's own logic on in-memory tables: what it calls missing, doubled, different.

The same verifier runs on the real broker, tables and registry after the kill -9 test
(``test_service_process.py``).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from streaming.query.verify import Verdict, verify
from streaming.score.model import LoadedModel
from tests.streaming.query.test_processor_seam import constant_model, good, records

PREDICTIONS = "topic string, partition int, offset bigint, prediction double, " + (
    "model_name string, model_version string"
)
QUARANTINE = "topic string, partition int, offset bigint"


def predictions(spark: SparkSession, rows: list[tuple[int, float, str]]) -> DataFrame:
    return spark.createDataFrame(
        [("events", 0, offset, value, "m", version) for offset, value, version in rows],
        PREDICTIONS,
    )


def quarantine(spark: SparkSession, offsets: list[int]) -> DataFrame:
    return spark.createDataFrame([("events", 0, o) for o in offsets], QUARANTINE)


def models(version_values: dict[str, float]) -> dict[str, LoadedModel]:
    return {v: constant_model(v, value) for v, value in version_values.items()}


def check(
    spark: SparkSession,
    landed: list[tuple[int, float, str]],
    quarantined: list[int],
    versions: dict[str, float],
) -> Verdict:
    topic = records(spark, [good(0), good(1), b"{broken", good(3)])
    by_version = models(versions)
    return verify(
        topic,
        predictions(spark, landed),
        quarantine(spark, quarantined),
        lambda name, version: by_version[version],
        topics=("events",),
    )


def test_every_offset_once_with_reproduced_predictions_is_ok(spark: SparkSession) -> None:
    verdict = check(spark, [(0, 5.0, "1"), (1, 5.0, "1"), (3, 7.0, "2")], [2], {"1": 5.0, "2": 7.0})

    assert verdict.ok, verdict.render()
    assert (verdict.records, verdict.landed, verdict.rescored) == (4, 4, 3)
    assert verdict.render().startswith("OK: 4 records, 4 rows landed, 0 missing, 0 doubled")


def test_a_missing_and_a_doubled_offset_are_named(spark: SparkSession) -> None:
    verdict = check(spark, [(0, 5.0, "1"), (0, 5.0, "1"), (3, 5.0, "1")], [2], {"1": 5.0})

    assert not verdict.ok
    assert (verdict.missing, verdict.doubled, verdict.landed) == (1, 1, 4)
    assert verdict.examples["missing"] == ["events/0@1"]
    assert verdict.examples["doubled"] == ["events/0@0"]


def test_a_prediction_its_version_does_not_reproduce_is_different(spark: SparkSession) -> None:
    # Offset 3 says version 2 scored it 9.0; version 2 scores 7.0.
    verdict = check(spark, [(0, 5.0, "1"), (1, 5.0, "1"), (3, 9.0, "2")], [2], {"1": 5.0, "2": 7.0})

    assert (verdict.rescored, verdict.different) == (3, 1)
    assert verdict.examples["different"] == ["events/0@3"]
    assert not verdict.ok


def test_a_prediction_for_a_record_a_fresh_parse_rejects_is_different(
    spark: SparkSession,
) -> None:
    verdict = check(
        spark, [(0, 5.0, "1"), (1, 5.0, "1"), (2, 5.0, "1"), (3, 5.0, "1")], [], {"1": 5.0}
    )

    assert (verdict.different, verdict.examples["different"]) == (1, ["events/0@2"])


def test_rows_whose_record_left_the_topic_are_reported_not_failed(spark: SparkSession) -> None:
    landed = [(0, 5.0, "1"), (1, 5.0, "1"), (3, 5.0, "1"), (4, 5.0, "1")]  # 4: deleted since

    verdict = verify(
        records(spark, [good(0), good(1), b"{broken", good(3)]),
        predictions(spark, landed),
        quarantine(spark, [2]),
        topics=("events",),
    )

    assert verdict.ok and verdict.not_in_topic == 1 and verdict.rescored == 0
