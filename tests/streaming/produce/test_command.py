"""``python -m streaming produce`` against the real broker: rates, replays, malformed shares,
acknowledgements, topics."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake
from kafka import KafkaConsumer

from streaming.cli import main
from tests.support import read_topic, topic_exists

ROWS: list[dict[str, Any]] = [
    {
        "id": i,
        "room_type": ["Entire home/apt", "Private room", "Shared room"][i % 3],
        "accommodates": float(1 + i % 4),
        "bedrooms": None if i % 5 == 0 else float(i % 3),
        # Half the rows carry their own id and time, which a replay keeps.
        "event_id": f"e-{i}" if i % 2 else None,
        "event_time": "2026-11-24T08:30:00+00:00" if i % 2 else None,
    }
    for i in range(1, 41)
]


def _produce(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["produce", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _report(out: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return report


def _write(path: Path, fmt: str) -> Path:
    if fmt == "jsonl":
        path = path / "events.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    elif fmt == "csv":
        path = path / "events.csv"
        columns = list(ROWS[0])
        lines = [",".join(columns)]
        lines += [",".join("" if r[c] is None else str(r[c]) for c in columns) for r in ROWS]
        path.write_text("\n".join(lines) + "\n")
    elif fmt == "parquet":
        path = path / "events.parquet"
        pq.write_table(pa.Table.from_pylist(ROWS), path)
    else:
        path = path / "events"
        write_deltalake(str(path), pa.Table.from_pylist(ROWS))
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "delta"])
def test_each_format_is_replayed_with_its_keys_and_every_row_as_an_event(
    kafka_bootstrap: str,
    topic: str,
    tmp_path: Path,
    fmt: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _write(tmp_path, fmt)
    code, out, _ = _produce(
        capsys, "--bootstrap-servers", kafka_bootstrap, "--topic", topic,
        "--input", str(path), "--key-field", "id", "--output", "json",
    )  # fmt: skip
    assert code == 0
    report = _report(out)
    records = read_topic(kafka_bootstrap, topic)
    assert report["sent"] == report["acknowledged"] == len(records) == len(ROWS)
    assert report["source"] == f"{path} ({fmt})"

    by_key = {key.decode(): json.loads(value) for key, value in records if key and value}
    assert sorted(by_key, key=int) == [str(row["id"]) for row in ROWS]
    for row in ROWS:
        event = by_key[str(row["id"])]
        features = {k: v for k, v in row.items() if k not in ("event_id", "event_time")}
        assert {k: event[k] for k in features} == features, fmt
        if row["event_id"]:
            assert (event["event_id"], event["event_time"]) == (row["event_id"], row["event_time"])
        else:
            # JSON lines are sent as they are; rows of tables get an id and a time.
            assert (event["event_id"] is None) == (fmt == "jsonl")
            assert (event["event_time"] is None) == (fmt == "jsonl")


def test_a_rate_holds_the_send_back(
    kafka_bootstrap: str, topic: str, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    code, out, _ = _produce(
        capsys, "--bootstrap-servers", kafka_bootstrap, "--topic", topic,
        "--synthetic", "200", "--rate", "100", "--output", "json",
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert code == 0
    report = _report(out)
    # 200 events at 100/s: the 200th leaves 1.99 s after the first, however fast the machine.
    assert elapsed >= 1.8 and report["seconds"] >= 1.8
    assert report["rate"] <= 105
    assert report["acknowledged"] == len(read_topic(kafka_bootstrap, topic)) == 200


def _kind(value: bytes) -> str:
    try:
        body = json.loads(value.decode("utf-8"))
    except UnicodeDecodeError:
        return "invalid_utf8"
    except json.JSONDecodeError:
        return "malformed_json"
    return "type_mismatch" if isinstance(body["accommodates"], str) else "good"


def test_a_malformed_share_is_exact_a_third_of_each_kind_and_the_report_counts_what_landed(
    kafka_bootstrap: str, topic: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _produce(
        capsys, "--bootstrap-servers", kafka_bootstrap, "--topic", topic,
        "--synthetic", "300", "--malformed-share", "0.1", "--seed", "3", "--output", "json",
    )  # fmt: skip
    assert code == 0
    report = _report(out)
    records = read_topic(kafka_bootstrap, topic)
    kinds = Counter(_kind(value) for _, value in records if value is not None)
    assert kinds == {"good": 270, "malformed_json": 10, "type_mismatch": 10, "invalid_utf8": 10}
    assert report["malformed"] == {"malformed_json": 10, "type_mismatch": 10, "invalid_utf8": 10}
    assert (report["sent"], report["acknowledged"], report["failed"]) == (300, 300, 0)
    assert report["ok"] is True
    # The malformed ones keep their listing's key, like the others: ids 1..300 once each.
    assert sorted(int(key) for key, _ in records if key) == list(range(1, 301))


def test_create_topic_creates_a_missing_topic_once_and_says_so(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"created-{uuid.uuid4().hex[:8]}"
    argv = ["--bootstrap-servers", kafka_bootstrap, "--topic", name, "--synthetic", "20"]
    code, out, err = _produce(capsys, *argv, "--create-topic", "--partitions", "3")
    assert code == 0
    assert err.splitlines() == [f"created topic {name} (3 partitions, replication factor 1)"]
    assert out.startswith("sent 20 events from synthetic listings (seed 7) to " + name)

    code, out, err = _produce(capsys, *argv, "--create-topic")
    assert (code, err) == (0, "")
    assert out.startswith("sent 20 events")

    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
    try:
        assert consumer.partitions_for_topic(name) == {0, 1, 2}
    finally:
        consumer.close()
    assert len(read_topic(kafka_bootstrap, name)) == 40


def test_a_missing_topic_stops_before_sending_and_is_not_created(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"missing-{uuid.uuid4().hex[:8]}"
    code, out, err = _produce(
        capsys, "--bootstrap-servers", kafka_bootstrap, "--topic", name, "--synthetic", "5"
    )
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"error: topic {name} does not exist on {kafka_bootstrap}: create it, or give "
        "--create-topic (with --partitions and --replication-factor)"
    ]
    # The broker creates topics on first use (auto.create.topics.enable), and still has not.
    assert not topic_exists(kafka_bootstrap, name)
