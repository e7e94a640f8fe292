"""Measuring the arms: draining a pre-loaded topic, and latency under a live offered load."""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import closing

import numpy as np
from pyspark.sql import SparkSession

from benchmarks.arms import Arm, Workbench, make_arm
from benchmarks.figures import REALTIME, Drain, Latency, recording_failure
from benchmarks.polling import say, wait_until
from benchmarks.realtime import RealtimeArm
from benchmarks.topics import create_topic, send_at_rate
from streaming.settings import parse_trigger

__all__ = ["collector_ms", "measure_drain", "measure_latency"]

AVAILABLE_NOW = parse_trigger("available-now")
LIVE_TRIGGER = parse_trigger("200ms")


def measure_drain(
    bench: Workbench,
    arm_name: str,
    topic: str,
    events: int,
    timeout_s: float,
    repeat: int = 0,
    warm_up: bool = False,
) -> Drain:
    """Drain ``topic`` (``events`` records) with one arm, from its start to its last write.

    Args:
        repeat: Which round of drains it is (0: the first), for its folder and figure.
        warm_up: A drain before the rounds, whose figure is not reported (its own folder).
    """
    figure = Drain(arm_name, events, round=repeat)
    say(f"drain: {arm_name} on {topic}" + (" (warm-up)" if warm_up else ""))
    with recording_failure(figure):
        label = ("warm-up-" if warm_up else "") + f"{arm_name}-drain-{topic}"
        label += f"-{repeat}" if repeat else ""
        with closing(make_arm(arm_name, bench, topic, AVAILABLE_NOW, events, label)) as arm:
            collected = collector_ms(bench.spark)
            arm.start()
            arm.wait_ready()
            run = arm.finish(timeout_s)
            collected = collector_ms(bench.spark) - collected
        figure.seconds = run.seconds
        figure.batches = run.batches
        figure.spark_jobs = run.spark_jobs
        figure.spilled_bytes = run.spilled_bytes
        figure.peak_rss_bytes = run.peak_rss_bytes
        figure.phases_ms = run.phases_ms
        # Only an arm on the session works in its JVM (the consumer is a process of its own).
        figure.collector_ms = collected if run.spark_jobs is not None else None
    return figure


def collector_ms(spark: SparkSession) -> float:
    """Milliseconds the session's JVM (driver and local executors) has spent in garbage
    collection since it started, over all its collectors."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    beans = jvm.java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()
    return float(sum(max(0, bean.getCollectionTime()) for bean in beans))


def realtime_window(seconds: float, checkpoint_interval_s: float) -> float:
    """The real-time arm's window: whole checkpoint intervals, at least ``seconds``.

    Each checkpoint pauses Real-Time Mode's scoring for up to a second; a window of whole
    intervals holds as many pauses per record as the long run does. A shorter window would
    hold one pause or none, depending on when it started.
    """
    return checkpoint_interval_s * math.ceil(seconds / checkpoint_interval_s)


def measure_latency(
    bench: Workbench,
    arm_name: str,
    rate: int,
    seconds: float,
    pool: Sequence[tuple[bytes, bytes]],
    timeout_s: float,
    realtime_interval_s: float,
) -> Latency:
    """Send ``rate`` events/s for ``seconds`` to a fresh topic while the arm runs continuously
    (the real-time arm, at ``realtime_interval_s`` between checkpoints: for whole intervals).

    A row's latency is the time it became visible to readers minus its input's Kafka record
    timestamp: for a Delta arm the commit time (``commitInfo.timestamp``), for the real-time arm
    the output record's Kafka timestamp. The topics stamp records with the broker's clock when
    it appends them (``LogAppendTime``): on two cores the Python producer's own buffering can
    fall behind at 5,000 events/s, and that is the load generator's delay, not the arm's.
    """
    if arm_name == REALTIME:
        seconds = realtime_window(seconds, realtime_interval_s)
    figure = Latency(arm_name, rate, seconds=seconds)
    label = f"{arm_name}-live-{rate}"
    say(f"latency: {arm_name} at {rate} events/s for {seconds:.0f}s")
    with recording_failure(figure):
        topic = create_topic(bench.bootstrap, label, broker_time=True)
        arm: Arm
        if arm_name == REALTIME:
            arm = RealtimeArm(bench, topic, label, rate, seconds, realtime_interval_s)
        else:
            arm = make_arm(arm_name, bench, topic, LIVE_TRIGGER, int(rate * seconds), label)
        with closing(arm):
            arm.start()
            arm.wait_ready()
            sent = send_at_rate(bench.bootstrap, topic, pool, rate, seconds)
            figure.sent, figure.send_seconds = sent.sent, sent.seconds
            wait_until(lambda: arm.landed() >= sent.sent, "drain", timeout_s)
            run = arm.finish(timeout_s)
            sample = arm.latencies()
        figure.batches, figure.phases_ms = run.batches, run.phases_ms
        figure.landed = len(sample.latencies_ms)
        figure.landed_seconds = sample.span_ms / 1000
        p50, p95, p99 = np.percentile(sample.latencies_ms, [50, 95, 99])
        figure.p50_ms, figure.p95_ms, figure.p99_ms = float(p50), float(p95), float(p99)
        figure.max_ms = float(np.max(sample.latencies_ms))
    return figure
