"""``report``: the figures of a time window from the two tables, and the PNG a person opens."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from deltalake import write_deltalake
from matplotlib import image
from pyspark.sql.pandas.types import to_arrow_schema

from streaming.cli import main
from streaming.ops.report import (
    Window,
    bucket_seconds,
    render_figure,
    render_summary,
    summarize,
)
from streaming.sink.tables import (
    PREDICTIONS_PARTITION,
    PREDICTIONS_SCHEMA,
    QUARANTINE_PARTITION,
    QUARANTINE_SCHEMA,
)

PREDICTIONS = to_arrow_schema(PREDICTIONS_SCHEMA, timezone="UTC")
QUARANTINE = to_arrow_schema(QUARANTINE_SCHEMA, timezone="UTC")
NOON = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return NOON + timedelta(seconds=seconds)


def prediction_rows(scored: Sequence[tuple[float, float, str]]) -> pa.Table:
    """Predictions rows, one per (scored at, Kafka timestamp, model version), seconds after noon."""
    rows = [
        {"event_id": f"e-{i}", "key": f"k-{i}", "event_time": at(ts), "prediction": 1.0 * i,
         "model_name": "listing-price", "model_version": version, "model_run_id": "run",
         "topic": "listings", "partition": i % 2, "offset": i, "timestamp": at(ts),
         "batch_id": i, "scored_at": at(scored_at), "event_date": at(ts).date()}
        for i, (scored_at, ts, version) in enumerate(scored)
    ]  # fmt: skip
    return pa.Table.from_pylist(rows, PREDICTIONS)


def quarantine_rows(quarantined: Sequence[tuple[float, str]]) -> pa.Table:
    """Quarantine rows, one per (quarantined at, error kind), seconds after noon."""
    rows = [
        {"key": b"k", "value": b"{", "topic": "listings", "partition": 0, "offset": 100 + i,
         "timestamp": at(t), "error_kind": kind, "error_detail": "detail", "batch_id": i,
         "quarantined_at": at(t), "quarantined_date": at(t).date()}
        for i, (t, kind) in enumerate(quarantined)
    ]  # fmt: skip
    return pa.Table.from_pylist(rows, QUARANTINE)


def test_figures_per_bucket_are_exact() -> None:
    # scored at, Kafka timestamp (seconds after noon), version: latencies 1, 2, 10 | - | 4, 2
    predictions = prediction_rows(
        [(30, 29, "1"), (30, 28, "1"), (30, 20, "1"), (130, 126, "2"), (170, 168, "2")]
    )
    quarantine = quarantine_rows([(30, "malformed_json"), (130, "malformed_json"),
                                  (130, "missing_field")])  # fmt: skip
    window = Window(at(0), at(180))

    figures = summarize(predictions, quarantine, window, bucket_s=60)

    scored = figures.scored
    assert [t.isoformat() for t in scored.index] == [
        "2026-11-26T12:00:00+00:00",
        "2026-11-26T12:01:00+00:00",
        "2026-11-26T12:02:00+00:00",
    ]
    assert scored["rows"].tolist() == [3, 0, 2]
    assert scored["rows_per_s"].tolist() == pytest.approx([3 / 60, 0, 2 / 60])
    # Linear interpolation between the closest ranks, as numpy and pandas do by default.
    assert scored["p50_s"].tolist() == pytest.approx([2, np.nan, 3], nan_ok=True)
    assert scored["p95_s"].tolist() == pytest.approx([9.2, np.nan, 3.9], nan_ok=True)
    assert scored["p99_s"].tolist() == pytest.approx([9.84, np.nan, 3.98], nan_ok=True)
    assert figures.latency_s == pytest.approx({"p50": 2, "p95": 8.8, "p99": 9.76})
    assert figures.versions.to_dict("list") == {
        "listing-price v1": [3, 0, 0],
        "listing-price v2": [0, 0, 2],
    }
    assert figures.quarantined.to_dict("list") == {
        "malformed_json": [1, 0, 1],
        "missing_field": [0, 0, 1],
    }
    assert render_summary(figures).splitlines() == [
        "window: 2026-11-26 12:00:00 to 2026-11-26 12:03:00 UTC, buckets of 1 min",
        "scored: 5 rows (0.0278 rows/s)",
        "latency from Kafka timestamp to scoring: p50 2 s, p95 8.8 s, p99 9.76 s",
        "quarantined: 3 (malformed_json 2, missing_field 1)",
        "model versions: listing-price v1 3 rows, listing-price v2 2 rows",
    ]


def test_a_bucket_cut_by_the_window_counts_its_rate_over_the_part_inside() -> None:
    window = Window(at(30), at(120))  # 12:00:30 to 12:02:00
    figures = summarize(prediction_rows([(45, 44, "1"), (90, 89, "1")]), quarantine_rows([]),
                        window, bucket_s=60)  # fmt: skip

    assert figures.scored["rows"].tolist() == [1, 1]
    assert figures.scored["rows_per_s"].tolist() == pytest.approx([1 / 30, 1 / 60])
    assert figures.quarantined.empty and figures.quarantined_by_kind == {}


def test_a_window_with_only_quarantined_records_says_there_are_no_predictions() -> None:
    window = Window(at(0), at(3600))
    figures = summarize(prediction_rows([]), quarantine_rows([(10, "oversized")]), window)

    assert figures.scored["rows"].sum() == 0 and figures.scored["p50_s"].isna().all()
    assert render_summary(figures).splitlines()[1:] == [
        "scored: 0 rows (0 rows/s)",
        "latency from Kafka timestamp to scoring: no predictions",
        "quarantined: 1 (oversized 1)",
        "model versions: none",
    ]
    figure = render_figure(figures, "report")
    assert [t.get_text() for axes in figure.axes for t in axes.texts] == [
        "no predictions",
        "no predictions",
    ]


@pytest.mark.parametrize(
    ("span", "bucket"),
    [(timedelta(minutes=1), 1), (timedelta(hours=1), 60), (timedelta(hours=24), 900),
     (timedelta(days=7), 3 * 3600), (timedelta(days=365), 86400)],
)  # fmt: skip
def test_buckets_are_sized_to_the_window(span: timedelta, bucket: int) -> None:
    assert bucket_seconds(Window(NOON, NOON + span)) == bucket


def write_tables(folder: Path, predictions: pa.Table, quarantine: pa.Table) -> tuple[Path, Path]:
    """Real Delta tables with the service's schemas and partitioning (delta-rs, no Spark)."""
    paths = folder / "predictions", folder / "quarantine"
    write_deltalake(paths[0], predictions, partition_by=list(PREDICTIONS_PARTITION))
    write_deltalake(paths[1], quarantine, partition_by=list(QUARANTINE_PARTITION))
    return paths


def test_report_reads_the_window_from_delta_tables_and_writes_a_png(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hour = [(s, s - 0.5 - (s % 7) / 10, "1" if s < 1800 else "2") for s in range(0, 3600, 4)]
    outside = [(-60, -61, "1"), (3600, 3599, "2")]  # a minute before, and the window's end
    kinds = [(s, "missing_field" if i % 3 == 0 else "malformed_json")
             for i, s in enumerate(range(0, 3600, 120))]  # fmt: skip
    kinds.append((-86400, "oversized"))  # the day before: its partition is not read
    predictions, quarantine = write_tables(
        tmp_path, prediction_rows(hour + outside), quarantine_rows(kinds)
    )
    png = tmp_path / "report.png"

    code = main(["report", "--predictions-table", str(predictions), "--quarantine-table",
                 str(quarantine), "--from", "2026-11-26T12:00", "--until", "2026-11-26T13:00Z",
                 "--output", str(png)], {})  # fmt: skip

    assert code == 0
    assert capsys.readouterr().out.splitlines()[:5] == [
        "window: 2026-11-26 12:00:00 to 2026-11-26 13:00:00 UTC, buckets of 1 min",
        "scored: 900 rows (0.25 rows/s)",
        "latency from Kafka timestamp to scoring: p50 0.8 s, p95 1.1 s, p99 1.1 s",
        "quarantined: 30 (malformed_json 20, missing_field 10)",
        "model versions: listing-price v1 450 rows, listing-price v2 450 rows",
    ]
    pixels = image.imread(png)
    assert pixels.shape[:2] == (900, 1400)
    colours = np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0)
    assert len(colours) > 50  # lines, bars, text: not a blank canvas
    assert (pixels[..., :3] < 0.9).any(axis=2).mean() > 0.02


def test_report_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    predictions, quarantine = write_tables(
        tmp_path, prediction_rows([(0, -1, "1")]), quarantine_rows([(0, "malformed_json")])
    )
    tables = ["--predictions-table", str(predictions), "--quarantine-table", str(quarantine)]

    def error(*flags: str) -> str:
        assert main(["report", *flags, "--output", str(tmp_path / "r.png")], {}) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1
        return err.strip()

    assert error("--predictions-table", str(tmp_path / "none"), "--quarantine-table",
                 str(quarantine)) == f"error: no Delta table at {tmp_path / 'none'}"  # fmt: skip
    assert error("--predictions-table", str(quarantine), "--quarantine-table", str(quarantine),
                 "--since", "1h") == (
        f"error: table {quarantine} has no scored_at column: give the predictions table to "
        "--predictions-table and the quarantine table to --quarantine-table"
    )  # fmt: skip
    assert error(*tables, "--from", "2026-11-27", "--until", "2026-11-28") == (
        "error: no predictions between 2026-11-27 00:00:00 and 2026-11-28 00:00:00 UTC, and "
        "nothing quarantined: widen --since or give --from/--until"
    )
    assert error(*tables, "--since", "3 fortnights") == (
        "error: --since '3 fortnights' is not a time span: use e.g. 30m, 24h, 7d"
    )
    assert error(*tables, "--from", "yesterday") == (
        "error: --from 'yesterday' is not an ISO 8601 time: use e.g. 2026-11-26T12:00 or "
        "2026-11-26T12:00+01:00"
    )
    assert error(*tables, "--since", "1h", "--from", "2026-11-26") == (
        "error: give --since or --from, not both"
    )
    assert error(*tables, "--from", "2026-11-26T13:00", "--until", "2026-11-26T12:00") == (
        "error: --from must be before --until"
    )
    assert error(*tables, "--from", "2999-01-01").startswith(
        "error: --from 2999-01-01T00:00:00+00:00 is not before the end of the window, "
    )
