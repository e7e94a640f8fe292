"""``land`` on the real broker and real Delta tables: every source offset the real-time topics
carry lands exactly once, in exactly one table, also when records come twice and a batch runs
again after a restart."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path

from delta.tables import DeltaTable
from kafka import KafkaProducer
from pyspark.sql import DataFrame, SparkSession

from streaming.errors import ConfigurationError
from streaming.parse.events import ErrorKind
from streaming.query.landing import LandingQuery, check_topics
from streaming.settings import LandSettings, Trigger
from streaming.sink.tables import DEAD_LETTER_HEADERS
from tests.streaming.sink.test_realtime_topics import encoded, prediction
from tests.support import create_topic

FIRST = datetime(2026, 11, 26, 12, 0, 0)
AGAIN = datetime(2026, 11, 26, 12, 7, 0)  # the real-time query restarted and scored again


def dead_letter(offset: int, kind: str = "malformed_json") -> tuple[bytes, bytes, list]:
    values = (kind, f"{kind} at {offset}", "events", "1", str(offset), "2026-11-25T23:59:59.123Z")
    headers = [(n, v.encode()) for n, v in zip(DEAD_LETTER_HEADERS, values, strict=True)]
    return f"listing-{offset}".encode(), b"{not json " + str(offset).encode(), headers


def send(bootstrap: str, topic: str, records: list[tuple[bytes, bytes | None, list]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for key, value, headers in records:
            producer.send(topic, key=key, value=value, headers=headers)
        producer.flush()
    finally:
        producer.close()


def predictions(spark: SparkSession, bodies: list[dict[str, object]]) -> list:
    return [
        (f"listing-{b['offset']}".encode(), value, [])
        for b, value in zip(bodies, encoded(spark, bodies), strict=True)
    ]


def land(spark: SparkSession, settings: LandSettings) -> None:
    check_topics(settings)
    query = LandingQuery(spark, settings).start()
    query.awaitTermination()
    assert query.exception() is None


def table(spark: SparkSession, path: str) -> DataFrame:
    return spark.read.format("delta").load(path)


def test_every_source_offset_lands_once_across_duplicates_batches_and_reruns(
    spark: SparkSession, kafka_bootstrap: str, tmp_path: Path
) -> None:
    name = uuid.uuid4().hex[:8]
    preds_topic = create_topic(kafka_bootstrap, f"preds-{name}", partitions=2)
    dead_topic = create_topic(kafka_bootstrap, f"dead-{name}", partitions=1)
    settings = LandSettings(
        bootstrap_servers=kafka_bootstrap,
        predictions_topic=preds_topic,
        dead_letter_topic=dead_topic,
        predictions_table=str(tmp_path / "predictions"),
        quarantine_table=str(tmp_path / "quarantine"),
        checkpoint=str(tmp_path / "checkpoint"),
        trigger=Trigger(interval=None, available_now=True),
    )
    # Round 1: source offsets 0-4 scored (2 twice, the later copy first in the topic), 5 and
    # 6 dead letters (6 twice), and a value that is no predictions record.
    first = [prediction(o, FIRST) for o in range(5)]
    send(
        kafka_bootstrap,
        preds_topic,
        [
            *predictions(spark, [prediction(2, AGAIN, prediction=-1.0)]),
            *predictions(spark, first),
            (b"listing-x", b'{"prediction": 1.0}', []),
        ],
    )
    send(kafka_bootstrap, dead_topic, [dead_letter(5), dead_letter(6), dead_letter(6)])
    land(spark, settings)
    # As if killed between the tables' commits and the checkpoint's: the restart runs batch 0
    # again, with the same offsets.
    for done in ("0", ".0.crc"):
        (tmp_path / "checkpoint" / "commits" / done).unlink()
    # Round 2, after a restart of the real-time query: 3 and 6 again, 7 new, and a dead letter
    # of 4, which is scored already.
    send(
        kafka_bootstrap,
        preds_topic,
        predictions(spark, [prediction(3, AGAIN, prediction=-1.0), prediction(7, AGAIN)]),
    )
    send(kafka_bootstrap, dead_topic, [dead_letter(6), dead_letter(4, "type_mismatch")])
    land(spark, settings)

    scored = table(spark, settings.predictions_table)
    rows = {r.offset: r for r in scored.collect()}
    assert scored.count() == len(rows) == 6
    expected = {o: prediction(o, FIRST) for o in range(5)} | {7: prediction(7, AGAIN)}
    assert {o: {k: r[k] for k in expected[o]} for o, r in rows.items()} == expected
    assert {o: r.batch_id for o, r in rows.items()} == {0: 0, 1: 0, 2: 0, 3: 0, 4: 0, 7: 1}
    quarantined = table(spark, settings.quarantine_table)
    landed = sorted((r.topic, r.offset, r.error_kind, r.value) for r in quarantined.collect())
    assert landed == [
        ("events", 5, "malformed_json", bytearray(b"{not json 5")),
        ("events", 6, "malformed_json", bytearray(b"{not json 6")),
        (
            preds_topic,
            landed[2][1],
            ErrorKind.MALFORMED_PREDICTION,
            bytearray(b'{"prediction": 1.0}'),
        ),
    ]
    assert (
        DeltaTable.forPath(spark, settings.predictions_table)
        .detail()
        .first()
        .properties["delta.appendOnly"]
        == "true"
    )

    # Batch 0 ran twice; its second run inserted nothing.
    for path, inserted in (
        (settings.predictions_table, [(0, 5), (0, 0), (1, 1)]),
        (settings.quarantine_table, [(0, 3), (0, 0), (1, 0)]),
    ):
        history = DeltaTable.forPath(spark, path).history().orderBy("version").collect()
        runs = [
            (
                json.loads(h.userMetadata)["batch_id"],
                int(h.operationMetrics["numTargetRowsInserted"]),
            )
            for h in history
            if h.operation == "MERGE"
        ]
        assert runs == inserted, path


def test_a_missing_topic_stops_the_start_with_one_line(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = LandSettings(
        bootstrap_servers=kafka_bootstrap,
        predictions_topic=f"nowhere-{uuid.uuid4().hex[:8]}",
        dead_letter_topic="dead",
        predictions_table=str(tmp_path / "p"),
        quarantine_table=str(tmp_path / "q"),
    )
    try:
        check_topics(settings)
    except ConfigurationError as e:
        assert str(e) == (
            f"topic {settings.predictions_topic} does not exist on {kafka_bootstrap}: check "
            "--predictions-topic and --dead-letter-topic, or create it"
        )
    else:
        raise AssertionError("started without its topic")
