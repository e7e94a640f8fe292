"""The run's results as markdown tables, PNG plots and JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from benchmarks.figures import (
    CEILING,
    OTHER_PHASE,
    Drain,
    Figure,
    Latency,
    PartitionRead,
    Results,
    Startup,
    TableCompaction,
)

__all__ = ["markdown", "write_outputs"]

_GIB = 1024**3


def _number(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _row(name: str, figure: Figure, cells: list[str]) -> list[str]:
    """The figure's cells, or its failure in the first cell after the name."""
    if figure.error is not None:
        return [name, f"failed: {figure.error}", *[""] * (len(cells) - 1)]
    return [name, *cells]


def _ratio(value: float | None, base: float | None) -> float | None:
    return value / base if value and base else None


def _drain_section(results: Results) -> list[str]:
    if not results.drains:
        return []
    ceiling = results.drain(CEILING)
    base = ceiling.events_per_second if ceiling else None
    header = ["arm", "events", "seconds", "events/s", "vs ceiling", "batches", "Spark jobs",
              "jobs/batch", "spilled (MiB)", "peak memory (MiB)",
              "each round, events/s"]  # fmt: skip

    def cells(d: Drain) -> list[str]:
        each = ", ".join(_number(r.events_per_second) for r in results.rounds(d.arm))
        return [
            _number(d.events), _number(d.seconds, 1), _number(d.events_per_second),
            _number(_ratio(d.events_per_second, base), 2), _number(d.batches),
            _number(d.spark_jobs), _number(d.jobs_per_batch, 1),
            _number(d.spilled_mib, 1), _number(d.peak_rss_mib), each,
        ]  # fmt: skip

    rows = [_row(d.arm, d, cells(d)) for d in results.median_drains()]
    return [
        "## Drain throughput",
        "",
        "Each arm's median round (by events/s); every round is in the last column. Unless the "
        "command says `--no-warm-up`, each arm on the Spark session first drained its topic "
        "once, unmeasured.",
        "",
        *_table(header, rows),
        "",
    ]


_DRAIN_PHASES = ("triggerExecution", "addBatch", "queryPlanning", OTHER_PHASE)


def _drain_round_section(results: Results) -> list[str]:
    drains = sorted((d for d in results.drains if d.phases_ms), key=lambda d: (d.arm, d.round))
    if not drains:
        return []
    header = ["arm", "round", "events/s", "batches", "collector (s)",
              *(f"{p} ms" for p in _DRAIN_PHASES)]  # fmt: skip

    def cells(d: Drain) -> list[str]:
        collector = None if d.collector_ms is None else d.collector_ms / 1000
        return [
            str(d.round), _number(d.events_per_second), _number(d.batches),
            _number(collector, 2), *(_number(d.phases_ms.get(p)) for p in _DRAIN_PHASES),
        ]  # fmt: skip

    return [
        "## Where each drain's time went (every round)",
        "",
        "The JVM's garbage collection during the drain (the session's driver and its local "
        "executors), and the median ms per batch of Spark's progress phases (`durationMs`), "
        "so that a slow round can be told from a fast one.",
        "",
        *_table(header, [_row(d.arm, d, cells(d)) for d in drains]),
        "",
    ]


def _malformed_section(results: Results) -> list[str]:
    pairs = results.malformed_pairs
    if not pairs:
        return []
    header = ["pair", "service-mllib events/s", "with 1% malformed, events/s", "ratio", "cost (%)"]
    rows = []
    for number, pair in enumerate(pairs, start=1):
        failed = pair.clean if pair.clean.failed else pair.malformed
        if failed.failed:
            rows.append([str(number), f"failed: {failed.error}", "", "", ""])
            continue
        ratio = pair.ratio
        rows.append([
            str(number), _number(pair.clean.events_per_second),
            _number(pair.malformed.events_per_second), _number(ratio, 2),
            _number(None if ratio is None else (1 - ratio) * 100, 1),
        ])  # fmt: skip
    ratios = [p.ratio for p in pairs if p.ratio is not None]
    median = float(np.median(ratios)) if ratios else None
    rows.append(["median", "", "", _number(median, 2),
                 _number(None if median is None else (1 - median) * 100, 1)])  # fmt: skip
    return [
        "## Cost of 1% malformed events",
        "",
        "In each round the service drains the clean topic, and later the same events with "
        "every 100th malformed; a pair is one round's two drains.",
        "",
        *_table(header, rows),
        "",
    ]


def _latency_section(results: Results) -> list[str]:
    if not results.latencies:
        return []
    header = ["arm", "offered events/s", "seconds", "sent events/s", "landed events/s",
              "rows", "p50 ms", "p95 ms", "p99 ms", "max ms"]  # fmt: skip

    def cells(f: Latency) -> list[str]:
        return [
            _number(f.offered_rate), _number(f.seconds), _number(f.sent_rate),
            _number(f.landed_rate), _number(f.landed), _number(f.p50_ms), _number(f.p95_ms),
            _number(f.p99_ms), _number(f.max_ms),
        ]  # fmt: skip

    rows = [_row(f.arm, f, cells(f)) for f in results.latencies]
    return [
        "## End-to-end latency (live load; micro-batch arms 200 ms trigger)",
        "",
        *_table(header, rows),
        "",
    ]


_PHASES = ("triggerExecution", "addBatch", "queryPlanning", "walCommit", "commitOffsets",
           "latestOffset", "getBatch", OTHER_PHASE)  # fmt: skip


def _phase_section(results: Results) -> list[str]:
    figures = [f for f in results.latencies if f.phases_ms]
    if not figures:
        return []
    header = ["arm", "offered events/s", "batches", *(f"{p} ms" for p in _PHASES)]

    def cells(f: Latency) -> list[str]:
        phases = [_number(f.phases_ms.get(p)) for p in _PHASES]
        return [_number(f.offered_rate), _number(f.batches), *phases]

    rows = [_row(f.arm, f, cells(f)) for f in figures]
    return [
        "## Where a live micro-batch's time goes (median ms per batch that read records)",
        "",
        *_table(header, rows),
        "",
        "From Spark's progress reports (`durationMs`) of the latency runs above: `addBatch` is",
        "the write (for the service its whole `foreachBatch` call), `queryPlanning` the",
        "planning of the batch's query, `walCommit` and `commitOffsets` the offset and commit",
        "logs, `latestOffset`/`getBatch` the source, `other` what no phase names (the engine's",
        "bookkeeping between phases). Each is a median of its own, so they need not add up.",
        "",
    ]


def _startup_section(results: Results) -> list[str]:
    if not results.startups:
        return []
    header = ["arm", "backlog", "events", "first prediction (s)", "backlog written (s)",
              "peak memory (MiB)"]  # fmt: skip

    def cells(s: Startup) -> list[str]:
        return [s.backlog, _number(s.events), _number(s.first_prediction_s, 1),
                _number(s.drained_s, 1), _number(s.peak_rss_mib)]  # fmt: skip

    rows = [_row(s.arm, s, cells(s)) for s in results.startups]
    return [
        "## Time to first prediction (a process of its own, `--trigger 1s`, from Popen)",
        "",
        *_table(header, rows),
        "",
        "The service is `python -m streaming run` as users start it (its two tables created, the",
        "start check, the model loaded and smoke-tested, then the query). `ceiling` and",
        "`ceiling-model` are the ceiling arms' plain query in a process of its own",
        "(`python -m benchmarks.plainjob`: the same session settings, jars and class archive,",
        "the events' schema given; for `ceiling-model` MLflow imported while the JVM starts and",
        "the model loaded before the query; Delta's sink creates its table in the first",
        "batch): what a plain Spark job needs on this machine to its first row.",
        "",
    ]


def _compaction_line(c: TableCompaction) -> str:
    if c.failed:
        return f"failed: {c.error}"
    return (
        f"{_number(c.seconds, 1)} s, {_number(c.files_removed)} files removed, "
        f"{_number(c.files_added)} added"
    )


def _read_time_section(results: Results) -> list[str]:
    c = results.compaction
    if c is None:
        return []
    header = ["reader", "files before", "files after", "read before (s)", "read after (s)",
              "speed-up", "first read before (s)", "first read after (s)"]  # fmt: skip

    def cells(r: PartitionRead) -> list[str]:
        return [
            _number(r.files_before), _number(r.files_after), _number(r.best_before_s, 3),
            _number(r.best_after_s, 3), _number(r.speed_up, 1), _number(r.first_before_s, 3),
            _number(r.first_after_s, 3),
        ]  # fmt: skip

    rows = [_row(r.reader, r, cells(r)) for r in results.reads]
    written = "" if c.write_seconds is None else f" in {_number(c.write_seconds, 1)} s"
    return [
        "## Reading a day's partition before and after compaction",
        "",
        f"A predictions table created by `DeltaSink.ensure_table()` (the service's schema, "
        f"partitioning and properties), then {_number(c.appends)} appends of "
        f"{_number(c.rows_per_append)} rows to one day "
        f"({_number(c.appends * c.rows_per_append)} rows) and {c.other_day_appends} to the next"
        f"{written}. Compaction of the whole table (`streaming.sink.maintenance.compact`, Delta "
        f"OPTIMIZE with Spark): {_compaction_line(c)}.",
        "",
        *(_table(header, rows) if rows else []),
        "",
        '- The appends are written with delta-rs (`write_deltalake(mode="append")`, one '
        "commit and one Parquet file each), not with Spark as the service writes them "
        "(`DeltaSink.append`, ~10 times slower per commit).",
        "- A read is the whole day, every column, materialised: delta-rs "
        "`DeltaTable(path).to_pyarrow_table(filters=...)` (opening the table included); DuckDB "
        "`delta_scan(...) WHERE event_date = ...` fetched as an Arrow table (the extension "
        "loaded before); Polars `scan_delta(...).filter(...).collect()`; Spark "
        '`spark.read.format("delta").load(path).where(...)` written to the `noop` sink '
        "(every column read, nothing kept), on the run's session.",
        f"- Read before/after: the fastest of {c.timed_reads} read(s) after a first one; the "
        "first read's time is in the last two columns (Spark's also fills the session's cache "
        "of the table's log, and in a run of this part alone it is the session's first scan). "
        "Speed-up: read before / read after.",
        "",
    ]


_NOTES = """\
Notes:
- Drain: events / seconds from the arm's start (query start; consumer start after its model
  loaded) until its last write. The Spark arms share one session (`local[*]`) started before;
  the consumer is kafka-python + the scikit-learn pyfunc + delta-rs in its own process.
- Spark jobs: jobs in the query's job group (its run id), from the Spark UI REST API; spilled:
  what their stages wrote to disk for want of memory (`diskBytesSpilled`); batches:
  micro-batches that read records.
- Peak memory: resident memory of the process tree doing the work, sampled every 0.5 s (for
  the Spark arms the whole benchmark process with its JVM, whose heap does not shrink).
- Latency: when a prediction became visible minus the input's Kafka record timestamp (the
  broker's clock when it appended the record: the live topics are `LogAppendTime`, so the
  load generator's own buffering is not counted): for the Delta arms the commit time
  (`commitInfo.timestamp`); for `realtime` (`python -m streaming realtime`, Spark Real-Time
  Mode, Kafka -> Kafka, its own process and session, `local[*]`) the output record's Kafka
  timestamp (also the broker's), at-least-once, after a warm-up of its own at the measured
  rate, up to 15 s (its process is new; the Delta arms run on the warmed-up session). Its
  window is whole checkpoint intervals (`--realtime-interval`, by default the command's own
  default, 5 minutes), so that it holds as many checkpoints per record as the long run: at
  each, the query's long-running tasks end, the next ones start, and scoring pauses (the
  `max ms` column).
- Time to first prediction: from `Popen` to the first predictions commit holding rows; the
  process runs until the backlog is written, then gets SIGTERM.
"""


def markdown(results: Results) -> str:
    """The results as markdown: the machine, then one table per group of figures."""
    m = results.machine
    lines = [
        "# Benchmark results",
        "",
        f"- Machine: {m.cores} cores, {m.memory_bytes / _GIB:.1f} GiB memory; {m.versions}",
        f"- Date: {m.date}",
        f"- Command: `{m.command}`",
        "",
        *_drain_section(results),
        *_malformed_section(results),
        *_drain_round_section(results),
        *_latency_section(results),
        *_phase_section(results),
        *_startup_section(results),
        *_read_time_section(results),
        _NOTES if results.drains else "",
    ]
    return "\n".join(lines)


def _plot_throughput(drains: Sequence[Drain], path: Path) -> None:
    measured = [d for d in drains if d.events_per_second is not None]
    figure, axes = plt.subplots(figsize=(8, 0.6 * max(len(measured), 1) + 1.5))
    names = [d.arm for d in measured]
    rates = [d.events_per_second or 0.0 for d in measured]
    axes.barh(names, rates, color="tab:blue")
    axes.invert_yaxis()
    axes.set_xlim(0, max(rates, default=1.0) * 1.2)
    axes.set_xlabel("events/s (drain of the pre-loaded topic)")
    axes.set_title("Drain throughput")
    for y, rate in enumerate(rates):
        axes.annotate(f"{rate:,.0f}", (rate, y), xytext=(3, 0), textcoords="offset points",
                      va="center")  # fmt: skip
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _plot_latency(latencies: Sequence[Latency], path: Path) -> None:
    rates = sorted({f.offered_rate for f in latencies}) or [0]
    figure, all_axes = plt.subplots(1, len(rates), figsize=(5 * len(rates), 4), squeeze=False)
    for axes, rate in zip(all_axes[0], rates, strict=True):
        measured = [f for f in latencies if f.offered_rate == rate and f.p50_ms is not None]
        for offset, (label, values) in enumerate(
            (
                ("p50", [f.p50_ms or 0.0 for f in measured]),
                ("p95", [f.p95_ms or 0.0 for f in measured]),
                ("p99", [f.p99_ms or 0.0 for f in measured]),
            )
        ):
            axes.bar([i + (offset - 1) * 0.27 for i in range(len(measured))], values, 0.27,
                     label=label)  # fmt: skip
        axes.set_xticks(range(len(measured)), [f.arm for f in measured], rotation=15)
        axes.set_yscale("log")
        axes.set_ylabel("ms, visible - Kafka timestamp (log)")
        axes.set_title(f"{rate:,} events/s offered")
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _plot_read_time(reads: Sequence[PartitionRead], path: Path) -> None:
    measured = [r for r in reads if r.best_before_s is not None]
    figure, axes = plt.subplots(figsize=(8, 4.5))
    positions = range(len(measured))
    files = next(((r.files_before, r.files_after) for r in measured), (None, None))
    for offset, (label, values) in enumerate(
        (
            (f"before compaction (files: {_number(files[0])})",
             [r.best_before_s or 0.0 for r in measured]),
            (f"after compaction (files: {_number(files[1])})",
             [r.best_after_s or 0.0 for r in measured]),
        )
    ):  # fmt: skip
        xs = [i + (offset - 0.5) * 0.38 for i in positions]
        bars = axes.bar(xs, values, 0.38, label=label)
        axes.bar_label(bars, [f"{v:.3f}" if v else "" for v in values], fontsize=8)
    axes.set_xticks(list(positions), [r.reader for r in measured])
    axes.set_yscale("log")
    axes.set_ylabel("seconds, fastest read of the day (log)")
    axes.set_title("Reading a day's partition before and after compaction")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _as_json(results: Results) -> dict[str, Any]:
    data = asdict(results)
    for group, derived in (
        ("drains", ("events_per_second", "jobs_per_batch")),
        ("latencies", ("sent_rate", "landed_rate")),
        ("reads", ("speed_up",)),
    ):
        for item, figure in zip(data[group], getattr(results, group), strict=True):
            item.update({name: getattr(figure, name) for name in derived})
    data["median_drains"] = {d.arm: d.events_per_second for d in results.median_drains()}
    data["malformed_pairs"] = [
        {"clean_round": p.clean.round, "malformed_round": p.malformed.round, "ratio": p.ratio}
        for p in results.malformed_pairs
    ]
    return data


def write_outputs(results: Results, out: Path) -> str:
    """Write ``results.md``, ``results.json`` and the plots of the parts that ran:
    ``throughput.png`` and ``latency.png`` (the arms), ``readtime.png`` (the read-time part).

    Returns:
        The markdown.
    """
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(results)
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps(_as_json(results), indent=2) + "\n")
    if results.drains:
        _plot_throughput(results.median_drains(), out / "throughput.png")
        _plot_latency(results.latencies, out / "latency.png")
    if results.compaction is not None:
        _plot_read_time(results.reads, out / "readtime.png")
    return text
