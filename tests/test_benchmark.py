"""The benchmark still runs end to end: a tiny run of every arm (figures, not timings, checked)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from matplotlib import image

from benchmarks.arms import batch_phases_ms
from benchmarks.figures import (
    ARMS,
    CEILING_MODEL,
    CONSUMER,
    DRAIN_ARMS,
    LATENCY_ARMS,
    READERS,
    REALTIME,
    SERVICE_MLLIB,
    SERVICE_MLLIB_MALFORMED,
    SERVICE_PYFUNC,
    Drain,
    Machine,
    Results,
)
from benchmarks.maintenance import OTHER_DAY_APPENDS
from benchmarks.measure import realtime_window
from tests.support import free_port

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
_APPENDS = 4
_SMOKE_ARMS = tuple(a for a in ARMS if a != SERVICE_PYFUNC)
_SMOKE_DRAINS = set(DRAIN_ARMS) & set(_SMOKE_ARMS)


def _free_port_pair() -> int:
    """A free port whose successor (the broker's controller port) is free too."""
    for _ in range(20):
        port = free_port()
        if port < 65535 and _is_free(port + 1):
            return port
    raise RuntimeError("no two consecutive free ports")


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m benchmarks`` with tiny sizes; returns its output folder."""
    out = tmp_path_factory.mktemp("benchmark")
    command = [
        sys.executable, "-m", "benchmarks",
        "--events", "2000", "--rate", "200", "--latency-seconds", "3",
        "--appends", str(_APPENDS), "--reads", "1",
        # One start is enough to keep the start-up timing from rotting: the large backlog
        # starts the same command on a bigger topic.
        "--startups", "small",
        # The plain job with the model covers the plain job's command; without it, it is less.
        "--startup-arms", f"{SERVICE_MLLIB},{CEILING_MODEL}",
        # The pyfunc arm is the service arm with another model URI (its serving path is tested
        # in tests/streaming/query); a warm-up only matters for timings.
        "--arms", ",".join(_SMOKE_ARMS), "--no-warm-up",
        "--drain-rounds", "2",
        # Real-Time Mode's shortest checkpoint interval: the real-time arm sends for 5 s.
        "--realtime-interval", "5",
        "--out", str(out), "--kafka-port", str(_free_port_pair()),
    ]  # fmt: skip
    env = {**os.environ, "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable)}
    finished = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    return out


def test_every_arm_has_a_throughput_each_round(smoke_run: Path) -> None:
    markdown = (smoke_run / "results.md").read_text()
    assert "failed" not in markdown, markdown
    results = json.loads((smoke_run / "results.json").read_text())
    rounds = Counter((d["arm"], d["round"]) for d in results["drains"])
    consumer_rounds = {(CONSUMER, 0)} if CONSUMER in _SMOKE_DRAINS else set()
    spark_arms = _SMOKE_DRAINS - {CONSUMER}
    assert set(rounds) == {(a, r) for a in spark_arms for r in (0, 1)} | consumer_rounds
    assert set(rounds.values()) == {1}
    # Spark's arms say what their jobs spilled (a smoke run's batches fit in memory).
    assert {d["arm"]: d["spilled_bytes"] for d in results["drains"] if d["arm"] in spark_arms} == {
        a: 0 for a in spark_arms
    }
    assert all(isinstance(d["events_per_second"], float) for d in results["drains"])
    assert set(results["median_drains"]) == _SMOKE_DRAINS
    for arm in _SMOKE_DRAINS:
        assert f"| {arm} |" in markdown
    # Each round of an arm on the session says where its time went; the consumer's cannot.
    for d in results["drains"]:
        on_session = d["arm"] in spark_arms
        assert (d["collector_ms"] is not None) == on_session, d
        assert ("addBatch" in d["phases_ms"]) == on_session, d
        if on_session:
            assert d["collector_ms"] >= 0, d
            assert f"| {d['arm']} | {d['round']} |" in markdown
    assert "## Where each drain's time went (every round)" in markdown


def test_the_malformed_cost_is_taken_from_the_rounds(smoke_run: Path) -> None:
    results = json.loads((smoke_run / "results.json").read_text())
    pairs = results["malformed_pairs"]
    assert [(p["clean_round"], p["malformed_round"]) for p in pairs] == [(0, 0), (1, 1)]
    assert all(p["ratio"] > 0 for p in pairs)
    assert "| median |" in (smoke_run / "results.md").read_text()


def test_an_arms_figure_is_its_median_round() -> None:
    results = Results(Machine(2, 1, "today", "scripts/benchmark", "versions"))
    for round_, seconds in enumerate((10.0, 4.0, 5.0)):
        results.drains.append(Drain(SERVICE_MLLIB, 100, round_, seconds))
        results.drains.append(Drain(SERVICE_MLLIB_MALFORMED, 100, round_, seconds + 1))
    results.drains.append(Drain(CONSUMER, 100, 0, None, error="broke"))
    median = results.drain(SERVICE_MLLIB)
    assert median is not None and (median.round, median.seconds) == (2, 5.0)
    failed = results.drain(CONSUMER)
    assert failed is not None and failed.error == "broke"
    assert results.drain_arms() == [SERVICE_MLLIB, SERVICE_MLLIB_MALFORMED, CONSUMER]
    assert [(p.clean.round, p.malformed.round) for p in results.malformed_pairs] == [
        (0, 0),
        (1, 1),
        (2, 2),
    ]


def test_latency_and_startup_figures_are_filled_in(smoke_run: Path) -> None:
    results = json.loads((smoke_run / "results.json").read_text())
    assert {f["arm"] for f in results["latencies"]} == set(LATENCY_ARMS)
    assert all(f["p99_ms"] is not None and f["landed"] > 0 for f in results["latencies"])
    for figure in results["latencies"]:
        assert figure["p99_ms"] <= figure["max_ms"], figure
        # The smoke run sends for 3 s; the real-time arm for one 5 s checkpoint interval.
        assert figure["seconds"] == (5 if figure["arm"] == REALTIME else 3), figure
        micro_batches = figure["arm"] in (CEILING_MODEL, SERVICE_MLLIB)
        assert (figure["batches"] > 0) == (figure["arm"] != REALTIME), figure  # writes
        assert ("addBatch" in figure["phases_ms"]) == micro_batches, figure
    assert "## Where a live micro-batch's time goes" in (smoke_run / "results.md").read_text()
    # The service and the plain job with the model, each started as a process of its own.
    assert [(s["arm"], s["backlog"]) for s in results["startups"]] == [
        (SERVICE_MLLIB, "small"),
        (CEILING_MODEL, "small"),
    ]
    assert all(s["first_prediction_s"] > 0 for s in results["startups"]), results["startups"]
    assert f"| {CEILING_MODEL} | small | 1,000 |" in (smoke_run / "results.md").read_text()


@pytest.mark.parametrize(
    ("seconds", "interval", "window"),
    [(60, 300, 300), (300, 300, 300), (301, 300, 600), (3, 5, 5), (60, 5, 60), (62, 5, 65)],
)
def test_the_realtime_window_is_whole_checkpoint_intervals(
    seconds: float, interval: float, window: float
) -> None:
    assert realtime_window(seconds, interval) == window


def test_read_time_before_and_after_compaction_is_filled_in(smoke_run: Path) -> None:
    markdown = (smoke_run / "results.md").read_text()
    assert "## Reading a day's partition before and after compaction" in markdown
    results = json.loads((smoke_run / "results.json").read_text())
    compaction = results["compaction"]
    assert compaction["files_removed"] == _APPENDS + OTHER_DAY_APPENDS
    assert compaction["files_added"] == 2  # one per day
    assert [r["reader"] for r in results["reads"]] == list(READERS)
    for read in results["reads"]:
        assert (read["files_before"], read["files_after"]) == (_APPENDS, 1), read
        assert read["rows"] == _APPENDS * compaction["rows_per_append"], read
        assert all(isinstance(read[k], float) for k in ("best_before_s", "best_after_s")), read
        assert isinstance(read["speed_up"], float), read
        assert f"| {read['reader']} | {_APPENDS} | 1 |" in markdown


@pytest.mark.parametrize("name", ["throughput.png", "latency.png", "readtime.png"])
def test_plots_are_images(smoke_run: Path, name: str) -> None:
    pixels = image.imread(smoke_run / name)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100


def test_batch_phases_are_medians_with_what_no_phase_names() -> None:
    reports = [
        {"durationMs": {"triggerExecution": 1000, "addBatch": 700, "walCommit": 100}},
        {"durationMs": {"triggerExecution": 1400, "addBatch": 900, "walCommit": 300}},
        {"durationMs": {"triggerExecution": 600, "addBatch": 500, "walCommit": 20}},
    ]
    assert batch_phases_ms(reports) == {
        "triggerExecution": 1000.0,
        "addBatch": 700.0,
        "other": 200.0,  # of 200, 200 and 80
        "walCommit": 100.0,
    }
    assert list(batch_phases_ms(reports)) == ["triggerExecution", "addBatch", "other", "walCommit"]
    assert batch_phases_ms([]) == {}
