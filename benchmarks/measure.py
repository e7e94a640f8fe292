"""Measuring the arms: draining a pre-loaded topic, and latency under a live offered load."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass

import numpy as np

from benchmarks.arms import Workbench, make_arm
from benchmarks.deltalog import kafka_timestamps_ms, read_commits, rows_committed
from benchmarks.figures import Drain, Latency, recording_failure
from benchmarks.polling import say, wait_until
from benchmarks.topics import create_topic, send_at_rate
from streaming.settings import parse_trigger

__all__ = ["measure_drain", "measure_latency"]

AVAILABLE_NOW = parse_trigger("available-now")
LIVE_TRIGGER = parse_trigger("200ms")


def measure_drain(
    bench: Workbench, arm_name: str, topic: str, events: int, timeout_s: float
) -> Drain:
    """Drain ``topic`` (``events`` records) with one arm, from its start to its last write."""
    figure = Drain(arm_name, events)
    say(f"drain: {arm_name} on {topic}")
    with recording_failure(figure):
        label = f"{arm_name}-drain-{topic}"
        with closing(make_arm(arm_name, bench, topic, AVAILABLE_NOW, events, label)) as arm:
            arm.start()
            arm.wait_ready()
            run = arm.finish(timeout_s)
        figure.seconds = run.seconds
        figure.batches = run.batches
        figure.spark_jobs = run.spark_jobs
        figure.peak_rss_bytes = run.peak_rss_bytes
    return figure


@dataclass(frozen=True)
class _Sample:
    """Per row, commit time minus Kafka timestamp; and the span from first record to last commit."""

    latencies_ms: np.ndarray
    span_ms: float


def _latency_sample(table: str) -> _Sample:
    latencies, first_record, last_commit = [], np.inf, 0.0
    for commit in read_commits(table):
        for file in commit.files:
            stamps = kafka_timestamps_ms(table, file)
            if len(stamps):
                latencies.append(commit.timestamp_ms - stamps)
                first_record = min(first_record, float(stamps.min()))
                last_commit = max(last_commit, commit.timestamp_ms)
    if not latencies:
        raise RuntimeError(f"no rows landed in {table}")
    return _Sample(np.concatenate(latencies), last_commit - first_record)


def measure_latency(
    bench: Workbench,
    arm_name: str,
    rate: int,
    seconds: float,
    pool: Sequence[tuple[bytes, bytes]],
    timeout_s: float,
) -> Latency:
    """Send ``rate`` events/s for ``seconds`` to a fresh topic while the arm runs continuously.

    A row's latency is the time its Delta commit was made (``commitInfo.timestamp``) minus its
    Kafka record timestamp (the producer's clock at send).
    """
    figure = Latency(arm_name, rate)
    label = f"{arm_name}-live-{rate}"
    say(f"latency: {arm_name} at {rate} events/s for {seconds:.0f}s")
    with recording_failure(figure):
        topic = create_topic(bench.bootstrap, label)
        arm = make_arm(arm_name, bench, topic, LIVE_TRIGGER, int(rate * seconds), label)
        with closing(arm):
            arm.start()
            arm.wait_ready()
            sent = send_at_rate(bench.bootstrap, topic, pool, rate, seconds)
            figure.sent, figure.send_seconds = sent.sent, sent.seconds
            wait_until(lambda: rows_committed(arm.table) >= sent.sent, "drain", timeout_s)
            arm.finish(timeout_s)
        sample = _latency_sample(str(arm.table))
        figure.landed = len(sample.latencies_ms)
        figure.landed_seconds = sample.span_ms / 1000
        p50, p95, p99 = np.percentile(sample.latencies_ms, [50, 95, 99])
        figure.p50_ms, figure.p95_ms, figure.p99_ms = float(p50), float(p95), float(p99)
    return figure
