"""Where produced events come from: a file's format and rows, synthetic listings (no broker)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake

from infra.listings import FEATURE_COLUMNS, generate_listings
from streaming.errors import ConfigurationError
from streaming.produce.sources import detect_format, open_file, open_synthetic
from streaming.produce.synthetic import listing_events, listing_rows

TABLE = pa.table({"id": [1, 2, 3], "room_type": ["Private room", None, "Hotel room"]})


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("events.jsonl", "jsonl"),
        ("events.NDJSON", "jsonl"),
        ("events.json", "jsonl"),
        ("listings.csv", "csv"),
        ("listings.csv.gz", "csv"),
        ("listings.parquet", "parquet"),
        ("listings.pq", "parquet"),
    ],
)
def test_a_files_format_comes_from_its_name(tmp_path: Path, name: str, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"")
    assert detect_format(path) == expected


def test_a_folders_format_comes_from_its_delta_log_or_its_files(tmp_path: Path) -> None:
    write_deltalake(str(tmp_path / "delta"), TABLE)
    (tmp_path / "spark-output" / "day=1").mkdir(parents=True)
    pq.write_table(TABLE, tmp_path / "spark-output" / "day=1" / "part-0.parquet")
    (tmp_path / "csv-folder").mkdir()
    (tmp_path / "csv-folder" / "part-0.csv").write_text("id\n1\n")
    assert detect_format(tmp_path / "delta") == "delta"
    assert detect_format(tmp_path / "spark-output") == "parquet"
    assert detect_format(tmp_path / "csv-folder") == "csv"


def test_a_path_that_says_nothing_asks_for_the_format(tmp_path: Path) -> None:
    (tmp_path / "events.txt").write_text("{}\n")
    with pytest.raises(ConfigurationError, match=r"events.txt from its name: give --input-format"):
        detect_format(tmp_path / "events.txt")


def _rows(path: Path, fmt: str | None = None, key_field: str | None = None) -> list[object]:
    return list(open_file(path, fmt, key_field).rows)  # type: ignore[arg-type]


def test_table_rows_stream_with_their_keys_and_null_for_empty_csv_fields(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("id,room_type\n1,Private room\n2,\n3,Hotel room\n")
    pq.write_table(TABLE, tmp_path / "t.parquet")
    write_deltalake(str(tmp_path / "delta"), TABLE)
    expected = [(str(r["id"]), r) for r in TABLE.to_pylist()]
    for path in (tmp_path / "t.csv", tmp_path / "t.parquet", tmp_path / "delta"):
        assert _rows(path, key_field="id") == expected, path


def test_a_table_knows_its_row_count_before_it_is_read(tmp_path: Path) -> None:
    pq.write_table(TABLE, tmp_path / "t.parquet")
    write_deltalake(str(tmp_path / "delta"), TABLE)
    (tmp_path / "t.csv").write_text("id\n1\n")
    assert [open_file(tmp_path / p, None, None).total for p in ("t.parquet", "delta", "t.csv")] == [
        3,
        3,
        None,
    ]


def test_json_lines_are_sent_as_they_are_keyed_by_a_field_when_it_is_there(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"id": 1, "a": 2}\r\n\n{"a": 3}\n{not json\n')
    assert _rows(path, key_field="id") == [
        ("1", b'{"id": 1, "a": 2}'),
        (None, b'{"a": 3}'),
        (None, b"{not json"),
    ]


@pytest.mark.parametrize(
    ("name", "content", "fmt", "message"),
    [
        ("missing.jsonl", None, None, "cannot read --input {path}: no such file or folder"),
        ("bad.parquet", b"garbage!", None, "cannot read --input {path} as parquet: Could not"),
        ("empty.csv", b"", None, "cannot read --input {path} as csv: "),
        ("events.jsonl", b"{}\n", "delta", "cannot read --input {path} as delta: "),
    ],
)
def test_an_unreadable_or_malformed_file_fails_before_anything_is_sent(
    tmp_path: Path, name: str, content: bytes | None, fmt: str | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigurationError) as caught:
        open_file(path, fmt, None)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message.format(path=path))
    assert "\n" not in str(caught.value)


def test_a_csv_that_turns_malformed_halfway_says_where(tmp_path: Path) -> None:
    # Past the first block (1 MB), from which the column types were guessed.
    path = tmp_path / "late.csv"
    path.write_text("id,n\n" + "".join(f"{i},{i}\n" for i in range(100_000)) + "1,1.5x\n")
    rows = open_file(path, None, None).rows
    with pytest.raises(ConfigurationError, match=r"late.csv as csv: .*Row #100002.*'1.5x'"):
        list(rows)


def test_a_key_field_must_be_a_column_of_the_table(tmp_path: Path) -> None:
    pq.write_table(TABLE, tmp_path / "t.parquet")
    with pytest.raises(ConfigurationError, match=r"--key-field listing_id is not a column .*: id"):
        open_file(tmp_path / "t.parquet", None, "listing_id")


def test_synthetic_listings_are_the_generators_keyed_by_id_or_a_feature() -> None:
    frame = generate_listings(5, seed=3)
    rows = list(listing_rows(5, seed=3))
    assert [key for key, _ in rows] == ["1", "2", "3", "4", "5"]
    assert [list(features) for _, features in rows] == [list(FEATURE_COLUMNS)] * 5
    assert rows[0][1]["room_type"] == frame["room_type"][0]
    assert [key for key, _ in listing_rows(5, 3, "room_type")] == frame["room_type"].tolist()
    assert open_synthetic(5, 3, None).total == 5
    with pytest.raises(ConfigurationError, match="--key-field nope is not a field"):
        open_synthetic(5, 3, "nope")


def test_synthetic_listings_beyond_one_chunk_go_on_with_new_ids_and_new_rows() -> None:
    rows = list(listing_rows(50_003, seed=1))
    assert [key for key, _ in rows[-4:]] == ["50000", "50001", "50002", "50003"]
    assert rows[50_000][1] != rows[0][1]


def test_every_nth_event_is_malformed_in_turn_three_ways() -> None:
    events = list(listing_events(30, seed=1, malformed_every=5))
    assert len(events) == 30
    assert all(key.isdigit() for key, _ in events)
    bad = [value for i, (_, value) in enumerate(events, start=1) if i % 5 == 0]
    good = [value for i, (_, value) in enumerate(events, start=1) if i % 5]
    assert all(set(FEATURE_COLUMNS) <= set(json.loads(v)) for v in good)
    kinds = set()
    for value in bad:
        try:
            body = json.loads(value.decode("utf-8"))
            kinds.add("wrong type" if isinstance(body["accommodates"], str) else "?")
        except UnicodeDecodeError:
            kinds.add("not utf-8")
        except json.JSONDecodeError:
            kinds.add("truncated")
    assert kinds == {"truncated", "wrong type", "not utf-8"}
