"""``report``: what the service did over a time window, from its two tables, as a PNG.

Per time bucket: rows scored per second, the latency from each record's Kafka timestamp to its
scoring, quarantined records by error kind, and the rows each model version scored. The tables
are read with delta-rs (no Spark), only the columns the figures need, and only the files whose
statistics (or, for the quarantine, partitions) can hold rows of the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # no display on servers and in tests

import numpy as np
import pandas as pd
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from streaming.errors import ConfigurationError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "PREDICTION_COLUMNS",
    "QUARANTINE_COLUMNS",
    "ReportFigures",
    "Window",
    "bucket_seconds",
    "read_window",
    "render_figure",
    "render_summary",
    "summarize",
]

PREDICTION_COLUMNS = ("timestamp", "scored_at", "model_name", "model_version")
QUARANTINE_COLUMNS = ("quarantined_at", "error_kind")
_BUCKETS_S = (1, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 3 * 3600, 6 * 3600, 86400)
_MAX_BUCKETS = 100  # bars stay wider than a few pixels on a 1400-pixel-wide figure
_PERCENTILES = (50, 95, 99)
_SIZE_IN, _DPI = (14.0, 9.0), 100


@dataclass(frozen=True)
class Window:
    """From ``start`` (inclusive) to ``end`` (exclusive), both aware, in UTC."""

    start: datetime
    end: datetime

    def describe(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M:%S} and {self.end:%Y-%m-%d %H:%M:%S} UTC"


def bucket_seconds(window: Window) -> int:
    """The smallest of 1 s, 5 s, 10 s, 30 s, 1 min, ... 1 day that cuts the window into at most
    100 buckets (one minute for an hour, 15 minutes for a day)."""
    span = (window.end - window.start).total_seconds()
    return next((b for b in _BUCKETS_S if span / b <= _MAX_BUCKETS), _BUCKETS_S[-1])


@dataclass(frozen=True)
class ReportFigures:
    """The figures of one window, per bucket (indexed by the bucket's start, UTC).

    Attributes:
        scored: ``rows``, ``rows_per_s`` (over the part of the bucket inside the window) and
            the latency percentiles ``p50_s``, ``p95_s``, ``p99_s`` (linear interpolation;
            NaN for a bucket without rows).
        quarantined: one column of counts per error kind.
        versions: one column of scored rows per model version (``NAME vVERSION``), in the order
            they first served.
        latency_s: the percentiles over the whole window (``p50``, ``p95``, ``p99``), or empty.
    """

    window: Window
    bucket_s: int
    scored: pd.DataFrame
    quarantined: pd.DataFrame
    versions: pd.DataFrame
    latency_s: dict[str, float]

    @property
    def total_scored(self) -> int:
        return int(self.scored["rows"].sum())

    @property
    def quarantined_by_kind(self) -> dict[str, int]:
        totals = {str(k): int(v) for k, v in self.quarantined.sum().items()}
        return dict(sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])))

    @property
    def rows_by_version(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.versions.sum().items()}


def read_window(
    path: str,
    columns: Sequence[str],
    time_column: str,
    window: Window,
    date_partition: str | None = None,
) -> pa.Table:
    """The ``columns`` of a Delta table's rows whose ``time_column`` lies in ``window``.

    ``date_partition``, a partition column holding the day of ``time_column``, prunes whole
    days; other files are skipped by their ``time_column`` statistics.

    Raises:
        ConfigurationError: no Delta table at ``path``, or it lacks one of the columns.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        table = DeltaTable(path)
    except TableNotFoundError:
        raise ConfigurationError(f"no Delta table at {path}") from None
    dataset = table.to_pyarrow_dataset()
    missing = [c for c in (*columns, time_column) if c not in dataset.schema.names]
    if missing:
        raise ConfigurationError(
            f"table {path} has no {missing[0]} column: give the predictions table to "
            "--predictions-table and the quarantine table to --quarantine-table"
        )
    kind = dataset.schema.field(time_column).type
    start, end = (_as_column_time(t, kind) for t in (window.start, window.end))
    where = (pc.field(time_column) >= pa.scalar(start, kind)) & (
        pc.field(time_column) < pa.scalar(end, kind)
    )
    if date_partition is not None and date_partition in dataset.schema.names:
        last_day = (window.end - timedelta(microseconds=1)).date()
        where &= (pc.field(date_partition) >= pa.scalar(window.start.date(), pa.date32())) & (
            pc.field(date_partition) <= pa.scalar(last_day, pa.date32())
        )
    return dataset.to_table(columns=list(dict.fromkeys([*columns, time_column])), filter=where)


def _as_column_time(value: datetime, kind: pa.DataType) -> datetime:
    """``value`` as the column stores it: aware for a UTC timestamp, naive UTC otherwise."""
    return value if getattr(kind, "tz", None) else value.replace(tzinfo=None)


def _utc_series(values: pa.ChunkedArray) -> pd.Series:
    series = pd.Series(values.to_pandas())
    series = series.dt.tz_localize("UTC") if series.dt.tz is None else series.dt.tz_convert("UTC")
    return series.dt.as_unit("ns")  # the unit of the bucket index, so that they align


def summarize(
    predictions: pa.Table, quarantine: pa.Table, window: Window, bucket_s: int | None = None
) -> ReportFigures:
    """Bucket the rows of one window (pure: tables in, figures out).

    Args:
        predictions: Rows with ``timestamp`` (Kafka), ``scored_at``, ``model_name`` and
            ``model_version``.
        quarantine: Rows with ``quarantined_at`` and ``error_kind``.
        window: The window the rows were read for; buckets cover all of it.
        bucket_s: Bucket width in seconds (default: :func:`bucket_seconds`).
    """
    size = bucket_s or bucket_seconds(window)
    freq = f"{size}s"
    start = pd.Timestamp(window.start).tz_convert("UTC")
    end = pd.Timestamp(window.end).tz_convert("UTC")
    # Every bucket that overlaps the window, aligned to multiples of its size since the epoch.
    index = pd.date_range(
        start.floor(freq), end - pd.Timedelta(microseconds=1), freq=freq, name="bucket"
    )

    scored_at = _utc_series(predictions["scored_at"])
    latency = (scored_at - _utc_series(predictions["timestamp"])).dt.total_seconds()
    bucket = scored_at.dt.floor(freq)
    rows = bucket.value_counts().reindex(index, fill_value=0)
    seconds_inside = [
        (min(b + pd.Timedelta(seconds=size), end) - max(b, start)).total_seconds() for b in index
    ]
    scored = pd.DataFrame({"rows": rows.astype("int64")}, index=index)
    scored["rows_per_s"] = scored["rows"] / np.asarray(seconds_inside)
    for p in _PERCENTILES:
        quantile = latency.groupby(bucket).quantile(p / 100)
        scored[f"p{p}_s"] = quantile.reindex(index).astype("float64")
    versions = _counts(bucket, _version_labels(predictions), index)
    quarantined_bucket = _utc_series(quarantine["quarantined_at"]).dt.floor(freq)
    quarantined = _counts(quarantined_bucket, quarantine["error_kind"], index)

    overall = (
        {f"p{p}": float(np.percentile(latency.to_numpy(), p)) for p in _PERCENTILES}
        if len(latency)
        else {}
    )
    return ReportFigures(window, size, scored, quarantined, versions, overall)


def _version_labels(predictions: pa.Table) -> pa.ChunkedArray:
    """``NAME vVERSION`` of each row (``NAME`` alone outside the registry), joined in Arrow:
    a day of rows is millions, and only a handful of distinct labels."""
    import pyarrow.compute as pc

    name = predictions["model_name"]
    return pc.coalesce(pc.binary_join_element_wise(name, predictions["model_version"], " v"), name)


def _counts(bucket: pd.Series, labels: pa.ChunkedArray, index: pd.DatetimeIndex) -> pd.DataFrame:
    """Rows per bucket (rows of ``index``) and label (columns, in order of first appearance)."""
    if not len(labels):
        return pd.DataFrame(index=index)
    frame = pd.DataFrame(
        {"bucket": bucket.reset_index(drop=True), "label": labels.dictionary_encode().to_pandas()}
    )
    counts = frame.groupby(["bucket", "label"], observed=True).size().unstack(fill_value=0)
    first_seen = frame.groupby("label", observed=True)["bucket"].min().sort_values(kind="stable")
    return counts.reindex(index=index, columns=list(first_seen.index), fill_value=0).astype("int64")


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _duration(seconds: int) -> str:
    if seconds % 86400 == 0:
        return f"{seconds // 86400} d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _latency_text(latency_s: dict[str, float]) -> str:
    if not latency_s:
        return "no predictions"
    return ", ".join(f"{k} {_number(v)} s" for k, v in latency_s.items())


def _quarantine_text(figures: ReportFigures) -> str:
    kinds = figures.quarantined_by_kind
    total = sum(kinds.values())
    if not total:
        return "0"
    return f"{total:,} (" + ", ".join(f"{k} {v:,}" for k, v in kinds.items()) + ")"


def render_summary(figures: ReportFigures) -> str:
    """A few lines a person reads: the window, totals, latency, quarantine, versions."""
    window = figures.window
    span = (window.end - window.start).total_seconds()
    versions = figures.rows_by_version
    lines = [
        f"window: {window.describe().replace(' and ', ' to ')}, "
        f"buckets of {_duration(figures.bucket_s)}",
        f"scored: {figures.total_scored:,} rows ({_number(figures.total_scored / span)} rows/s)",
        f"latency from Kafka timestamp to scoring: {_latency_text(figures.latency_s)}",
        f"quarantined: {_quarantine_text(figures)}",
        "model versions: "
        + (", ".join(f"{v} {n:,} rows" for v, n in versions.items()) if versions else "none"),
    ]
    return "\n".join(lines)


def _times(index: pd.DatetimeIndex) -> list[datetime]:
    return [t.to_pydatetime().replace(tzinfo=None) for t in index]


def _empty(axes: Axes, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, color="gray")


def _stacked_bars(axes: Axes, counts: pd.DataFrame, width_days: float, empty: str) -> None:
    if counts.empty or not counts.to_numpy().sum():
        _empty(axes, empty)
        return
    x = mdates.date2num(_times(counts.index))  # days, the unit of the bars' width
    bottom = np.zeros(len(counts))
    for column in counts.columns:
        values = counts[column].to_numpy()
        axes.bar(x, values, width=width_days, bottom=bottom, align="edge", label=str(column))
        bottom += values
    axes.legend(loc="upper left", fontsize="small")


def render_figure(figures: ReportFigures, title: str) -> Figure:
    """Four panels: throughput, latency percentiles, quarantine by kind, model versions."""
    figure = Figure(figsize=_SIZE_IN, dpi=_DPI)
    (throughput, latency), (quarantine, versions) = figure.subplots(2, 2, sharex=True)
    bucket = _duration(figures.bucket_s)
    x = _times(figures.scored.index)
    width_days = figures.bucket_s / 86400

    throughput.step(x, figures.scored["rows_per_s"], where="post", color="#4c72b0")
    throughput.set_title("Throughput")
    throughput.set_ylabel("rows scored / s")
    if figures.latency_s:
        for p, color in zip(_PERCENTILES, ("#55a868", "#dd8452", "#c44e52"), strict=True):
            latency.plot(x, figures.scored[f"p{p}_s"], marker=".", color=color, label=f"p{p}")
        latency.legend(loc="upper left", fontsize="small")
    else:
        _empty(latency, "no predictions")
    latency.set_title("Latency: Kafka timestamp to scoring")
    latency.set_ylabel("seconds")
    _stacked_bars(quarantine, figures.quarantined, width_days, "nothing quarantined")
    quarantine.set_title("Quarantined by error kind")
    quarantine.set_ylabel(f"records per {bucket}")
    _stacked_bars(versions, figures.versions, width_days, "no predictions")
    versions.set_title("Model versions serving")
    versions.set_ylabel(f"rows scored per {bucket}")
    for axes in (throughput, latency):
        axes.set_ylim(bottom=0)
    for axes in (throughput, latency, quarantine, versions):
        axes.set_xlim(
            figures.window.start.replace(tzinfo=None), figures.window.end.replace(tzinfo=None)
        )
        axes.grid(alpha=0.3)
    for axes in (quarantine, versions):
        axes.set_xlabel("time (UTC)")
        locator = mdates.AutoDateLocator()
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    figure.suptitle(title)
    figure.text(
        0.01,
        0.01,
        f"{figures.window.describe().replace(' and ', ' to ')}, buckets of {bucket} | "
        f"scored {figures.total_scored:,} | latency {_latency_text(figures.latency_s)} | "
        f"quarantined {_quarantine_text(figures)}",
        fontsize="small",
    )
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    return figure


def write_report(
    predictions_table: str, quarantine_table: str, window: Window, output: Path
) -> ReportFigures:
    """Read the window from both tables, write the PNG to ``output``; returns the figures.

    Raises:
        ConfigurationError: a table is missing or not the service's, nothing happened in the
            window, or ``output``'s folder does not exist.
    """
    if not output.parent.is_dir():
        raise ConfigurationError(f"cannot write {output}: no folder {output.parent}")
    predictions = read_window(predictions_table, PREDICTION_COLUMNS, "scored_at", window)
    quarantine = read_window(
        quarantine_table, QUARANTINE_COLUMNS, "quarantined_at", window, "quarantined_date"
    )
    if not predictions.num_rows and not quarantine.num_rows:
        raise ConfigurationError(
            f"no predictions between {window.describe()}, and nothing quarantined: "
            "widen --since or give --from/--until"
        )
    figures = summarize(predictions, quarantine, window)
    render_figure(figures, f"Inference report: {predictions_table}").savefig(output, dpi=_DPI)
    return figures
