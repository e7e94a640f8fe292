"""The foreachBatch seam with in-memory stand-ins for the model source and the two sinks.

No MLflow, Kafka or Delta: these check the processor's own logic (routing, replay, swaps
between batches, empty batches, figures) in seconds. The same properties are checked on the
real stack in ``test_processor.py`` and ``test_service.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StringType, StructField, StructType

from streaming.ops.metrics import ServiceMetrics
from streaming.parse.schema import EventSchema
from streaming.query.processor import JudgeCache, MicroBatchProcessor
from streaming.score.identity import ModelIdentity
from streaming.score.model import LoadedModel
from streaming.sink.delta import BatchRecord

AT = datetime(2026, 11, 25, 9, 30)
RECORDS = (
    "key binary, value binary, topic string, partition int, offset bigint, timestamp timestamp"
)
SCHEMA = EventSchema(
    features=StructType(
        [StructField("room_type", StringType()), StructField("accommodates", DoubleType())]
    ),
    required=frozenset({"room_type", "accommodates"}),
)


def constant_model(version: str, prediction: float) -> LoadedModel:
    """A stand-in model: every event scores ``prediction``."""
    return LoadedModel(
        identity=ModelIdentity(f"models:/m/{version}", "m", version, f"run-{version}"),
        schema=SCHEMA,
        scorer=lambda events: events.withColumn("prediction", F.lit(prediction)),
        flavor="test",
    )


@dataclass
class ScriptedModels:
    """Model source whose model per batch is scripted; records which batches asked."""

    models: dict[str, LoadedModel]
    current: str
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    asked: list[tuple[str, int | str]] = field(default_factory=list)

    def for_batch(self, batch_id: int) -> LoadedModel:
        self.asked.append(("for_batch", batch_id))
        return self.models[self.current]

    def version(self, version: str) -> LoadedModel:
        self.asked.append(("version", version))
        return self.models[version]


@dataclass
class MemorySink:
    """Keeps appended batches in memory: a guarded append of a batch id it has is skipped (as
    Delta's transaction check does); an unguarded one would write it twice, and fails here."""

    app_id: str
    batches: dict[int, list[Row]] = field(default_factory=dict)
    records: list[BatchRecord] = field(default_factory=list)
    guarded: list[bool] = field(default_factory=list)

    def append(self, rows: DataFrame, record: BatchRecord, guarded: bool = True) -> None:
        collected = rows.collect()
        self.guarded.append(guarded)
        assert guarded or record.batch_id not in self.batches, "an unguarded append wrote twice"
        if record.batch_id not in self.batches:
            self.batches[record.batch_id] = collected
            self.records.append(record)

    def has_batch(self, batch_id: int) -> bool:
        return batch_id in self.batches


def records(spark: SparkSession, values: list[bytes | None], first_offset: int = 0) -> DataFrame:
    rows = [(b"k%d" % i, v, "events", 0, first_offset + i, AT) for i, v in enumerate(values)]
    return spark.createDataFrame(rows, RECORDS)


def good(i: int) -> bytes:
    return json.dumps(
        {"event_id": f"e{i}", "room_type": "Private room", "accommodates": i}
    ).encode()


def processor(
    models: ScriptedModels, replay: BatchRecord | None = None, begun_through: int | None = None
) -> tuple[MicroBatchProcessor, MemorySink, MemorySink]:
    predictions, quarantine = MemorySink("q:predictions"), MemorySink("q:quarantine")
    return (
        MicroBatchProcessor(
            models,
            predictions,
            quarantine,
            models.metrics,
            replay=replay,
            begun_through=begun_through,
            clock=lambda: AT,
        ),
        predictions,
        quarantine,
    )


def test_valid_events_are_scored_and_the_rest_quarantined_with_a_reason(
    spark: SparkSession,
) -> None:
    models = ScriptedModels({"1": constant_model("1", 100.0)}, current="1")
    process, predictions, quarantine = processor(models)

    outcome = process(records(spark, [good(0), b"{broken", None, good(3)]), 7)

    scored = predictions.batches[7]
    assert [(r.event_id, r.key, r.offset, r.prediction) for r in scored] == [
        ("e0", "k0", 0, 100.0),
        ("e3", "k3", 3, 100.0),
    ]
    assert {(r.model_name, r.model_version, r.model_run_id, r.batch_id) for r in scored} == {
        ("m", "1", "run-1", 7)
    }
    assert sorted((r.offset, r.error_kind) for r in quarantine.batches[7]) == [
        (1, "malformed_json"),
        (2, "tombstone"),
    ]
    assert (outcome.rows_in, outcome.predictions, outcome.quarantined) == (4, 2, 2)
    assert process.outcome(7) == outcome


def test_an_empty_batch_records_its_id_in_predictions_only(spark: SparkSession) -> None:
    models = ScriptedModels({"1": constant_model("1", 1.0)}, current="1")
    process, predictions, quarantine = processor(models)

    process(records(spark, []), 0)

    assert predictions.records == [BatchRecord("q:predictions", 0, "1")]
    assert predictions.batches[0] == []
    assert quarantine.records == []


def test_a_replayed_batch_uses_the_version_it_began_with(spark: SparkSession) -> None:
    models = ScriptedModels(
        {"1": constant_model("1", 1.0), "2": constant_model("2", 2.0)}, current="2"
    )
    begun = BatchRecord("q:predictions", 5, "1", 3)
    process, predictions, _ = processor(models, replay=begun)

    process(records(spark, [good(0)]), 5)
    process(records(spark, [good(1)], first_offset=1), 6)

    assert [r.model_version for r in predictions.batches[5]] == ["1"]
    assert [r.model_version for r in predictions.batches[6]] == ["2"]
    assert models.asked == [("version", "1"), ("for_batch", 6)]


def test_the_model_is_chosen_once_per_batch_so_no_batch_mixes_versions(
    spark: SparkSession,
) -> None:
    models = ScriptedModels(
        {"1": constant_model("1", 1.0), "2": constant_model("2", 2.0)}, current="1"
    )
    process, predictions, _ = processor(models)

    process(records(spark, [good(i) for i in range(3)]), 0)
    models.current = "2"  # the alias moved between batches
    process(records(spark, [good(i) for i in range(3, 6)], first_offset=3), 1)

    assert {r.model_version for r in predictions.batches[0]} == {"1"}
    assert {r.model_version for r in predictions.batches[1]} == {"2"}
    assert models.asked == [("for_batch", 0), ("for_batch", 1)]


def test_a_batch_run_twice_is_appended_once(spark: SparkSession) -> None:
    models = ScriptedModels({"1": constant_model("1", 1.0)}, current="1")
    process, predictions, quarantine = processor(models)
    batch = records(spark, [good(0), b"\xc3\x28"])

    process(batch, 3)
    process(batch, 3)  # Spark re-runs a batch whose checkpoint commit did not happen

    assert len(predictions.batches[3]) == 1 and len(quarantine.batches[3]) == 1
    assert [r.error_kind for r in quarantine.batches[3]] == ["invalid_utf8"]
    assert process.metrics.batches._value.get() == 2


def test_only_batches_begun_before_the_start_are_guarded_by_deltas_transaction_check(
    spark: SparkSession,
) -> None:
    models = ScriptedModels({"1": constant_model("1", 1.0)}, current="1")
    process, predictions, quarantine = processor(models, begun_through=4)

    process(records(spark, [good(0), b"{"]), 4)  # planned before the start: maybe begun
    process(records(spark, [good(1), b"{"], first_offset=2), 5)  # planned by this run
    process(records(spark, [good(1), b"{"], first_offset=2), 5)  # Spark re-runs it

    assert predictions.guarded == [True, False] and quarantine.guarded == [True, False]
    assert len(predictions.batches[5]) == 1 and len(quarantine.batches[5]) == 1


def test_a_versions_judge_is_built_once_and_can_be_built_before_its_first_batch(
    spark: SparkSession,
) -> None:
    one, two = constant_model("1", 1.0), constant_model("2", 2.0)
    models = ScriptedModels({"1": one, "2": two}, current="1")
    judges = JudgeCache()
    prepared = judges.for_model(two)  # what the model loader does for a new version
    predictions, quarantine = MemorySink("q:predictions"), MemorySink("q:quarantine")
    process = MicroBatchProcessor(models, predictions, quarantine, judges=judges, clock=lambda: AT)

    process(records(spark, [good(0)]), 0)
    first = judges.for_model(one)
    process(records(spark, [good(1)], first_offset=1), 1)
    models.current = "2"
    process(records(spark, [good(2)], first_offset=2), 2)

    assert judges.for_model(one) is first
    assert judges.for_model(two) is prepared
    assert first is not prepared
    assert [r.prediction for b in (0, 1, 2) for r in predictions.batches[b]] == [1.0, 1.0, 2.0]
