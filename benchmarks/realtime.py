"""The real-time arm: ``python -m streaming realtime`` (Spark Real-Time Mode, Kafka → Kafka).

It runs as users run it, a process of its own with its own session, and writes to two topics
of the run's broker. Its output is visible to readers when the output record is in Kafka, so a
record's latency is the output record's Kafka timestamp minus the input record's; both topics
stamp records with the broker's clock when it appends them.

The Delta arms run on a session that a warm-up drain has compiled and JIT-warmed; the real-time
process is new, so before it is measured it scores a warm-up of its own at the measured rate,
left out of the figures. A run of 2026-11-26 showed why at that rate: warmed up with 3 s at
1,000 events/s, the process took its first 7 s at 5,000 events/s to catch up (latency up to
2.3 s), and from then on held p50 9 ms, p99 13-29 ms per second until its checkpoint.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import datetime

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from benchmarks.arms import ArmRun, Workbench
from benchmarks.deltalog import LatencySample
from benchmarks.memory import PeakMemory
from benchmarks.polling import last_line, wait_until
from benchmarks.topics import PARTITIONS, create_topic, event_pool, send_at_rate

__all__ = ["RealtimeArm"]

_READY_TIMEOUT_S = 300
_STOP_TIMEOUT_S = 60
_WARM_UP_S = 15.0  # at most; never longer than the measured window
_WARM_UP_SEED = 99
# Until its first output the query may not be reading yet (it starts from the latest offsets):
# a trickle of records is sent until one comes out.
_PROBE_EVENTS_PER_S = 100
_PROBE_S = 1.0
_SETTLED_S = 1.0  # no new output for this long after the warm-up: it has caught up


def _epoch_ms(text: str) -> float:
    return datetime.fromisoformat(text).timestamp() * 1000


class _OutputReader:
    """Reads the arm's two output topics as they fill, keeping what the figures need.

    With librdkafka's consumer (``confluent-kafka``), as cheap as the load generator: the
    reader shares the machine with the query it measures.
    """

    def __init__(self, bootstrap: str, predictions: str, dead_letters: str) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"benchmark-reader-{predictions}",  # required; nothing is committed
                "enable.auto.commit": False,
            }
        )
        self.consumer.assign(
            [
                TopicPartition(t, p, OFFSET_BEGINNING)
                for t in (predictions, dead_letters)
                for p in range(PARTITIONS)
            ]
        )
        self.predictions = predictions
        self.sources: set[tuple[int, int]] = set()
        self.latencies_ms: list[float] = []
        self.first_input_ms = np.inf
        self.last_output_ms = 0.0

    def read(self) -> int:
        """Reads what arrived since the last call; returns the input records seen so far.

        Raises:
            RuntimeError: the consumer reported an error.
        """
        for record in self.consumer.consume(num_messages=100_000, timeout=0.2):
            error = record.error()
            if error is not None:
                raise RuntimeError(f"reading the real-time arm's output: {error}")
            if record.topic() == self.predictions:
                self._prediction(record.value() or b"", record.timestamp()[1])
            else:
                pairs: list[tuple[str, bytes | None]] = list(record.headers() or [])  # type: ignore[arg-type]
                headers = {k: (v or b"").decode() for k, v in pairs}
                source = (int(headers["source_partition"]), int(headers["source_offset"]))
                self.sources.add(source)
        return len(self.sources)

    def _prediction(self, value: bytes, output_ms: int) -> None:
        row = json.loads(value)
        self.sources.add((int(row["partition"]), int(row["offset"])))
        input_ms = _epoch_ms(row["timestamp"])
        self.latencies_ms.append(output_ms - input_ms)
        self.first_input_ms = min(self.first_input_ms, input_ms)
        self.last_output_ms = max(self.last_output_ms, float(output_ms))

    def forget(self) -> None:
        """Leave what was read so far out of the figures."""
        self.sources.clear()
        self.latencies_ms.clear()
        self.first_input_ms, self.last_output_ms = np.inf, 0.0

    def close(self) -> None:
        self.consumer.close()


class RealtimeArm:
    """``python -m streaming realtime`` on the run's broker, from the topic to two topics."""

    def __init__(
        self,
        bench: Workbench,
        topic: str,
        label: str,
        rate: int,
        warm_up_s: float,
        checkpoint_interval_s: float,
    ) -> None:
        self.bench = bench
        self.topic = topic
        self.label = label
        self.rate = rate
        self.warm_up_s = min(warm_up_s, _WARM_UP_S)
        self.checkpoint_interval_s = checkpoint_interval_s
        self.folder = bench.folder(label)
        self.log = self.folder / "realtime.log"
        self.predictions_topic = f"{label}-predictions"
        self.dead_letter_topic = f"{label}-dead-letters"
        self.process: subprocess.Popen[bytes] | None = None
        self.memory: PeakMemory | None = None
        self.reader: _OutputReader | None = None
        self.started_s = 0.0

    def start(self) -> None:
        create_topic(self.bench.bootstrap, self.predictions_topic, broker_time=True)
        create_topic(self.bench.bootstrap, self.dead_letter_topic, broker_time=True)
        command = [
            self.bench.python, "-m", "streaming", "realtime",
            "--bootstrap-servers", self.bench.bootstrap,
            "--topic", self.topic,
            "--predictions-topic", self.predictions_topic,
            "--dead-letter-topic", self.dead_letter_topic,
            "--model-uri", self.bench.models.mllib_uri,
            "--checkpoint", str(self.folder / "checkpoint"),
            "--home", str(self.folder),
            "--checkpoint-interval", f"{self.checkpoint_interval_s:g}s",
        ]  # fmt: skip
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.bench.checkout,
                env=dict(self.bench.env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.memory = PeakMemory(self.process.pid).start()
        self.started_s = time.time()
        self.reader = _OutputReader(
            self.bench.bootstrap, self.predictions_topic, self.dead_letter_topic
        )

    def _running(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"the real-time query exited: {last_line(self.log)}")

    def wait_ready(self) -> None:
        """Wait until the query scores what is sent, then until it has caught up with a warm-up
        at the measured rate; what came out so far is left out of the figures."""
        reader = self.reader
        assert reader is not None
        probe = event_pool(int(_PROBE_EVENTS_PER_S * _PROBE_S), _WARM_UP_SEED)

        def live() -> bool:
            send_at_rate(self.bench.bootstrap, self.topic, probe, _PROBE_EVENTS_PER_S, _PROBE_S)
            return self.landed() > 0

        wait_until(live, f"first output of {self.label}", _READY_TIMEOUT_S)
        pool = event_pool(min(int(self.rate * self.warm_up_s), 20_000), _WARM_UP_SEED)
        send_at_rate(self.bench.bootstrap, self.topic, pool, self.rate, self.warm_up_s)
        wait_until(self._settled, "warm-up output", _READY_TIMEOUT_S)
        reader.forget()

    def _settled(self) -> bool:
        before = self.landed()
        time.sleep(_SETTLED_S)
        return self.landed() == before

    def landed(self) -> int:
        assert self.reader is not None
        self._running()
        return self.reader.read()

    def latencies(self) -> LatencySample:
        reader = self.reader
        assert reader is not None
        if not reader.latencies_ms:
            raise RuntimeError(f"no predictions reached {self.predictions_topic}")
        return LatencySample(
            np.asarray(reader.latencies_ms), reader.last_output_ms - reader.first_input_ms
        )

    def finish(self, timeout_s: float) -> ArmRun:
        process, memory, reader = self.process, self.memory, self.reader
        assert process is not None and memory is not None and reader is not None
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=min(timeout_s, _STOP_TIMEOUT_S))
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(f"the real-time query did not stop: {last_line(self.log)}") from e
        if code != 0:
            raise RuntimeError(f"the real-time query failed ({code}): {last_line(self.log)}")
        return ArmRun(self.started_s, reader.last_output_ms / 1000, 0, memory.stop(), None)

    def close(self) -> None:
        if self.memory is not None:
            self.memory.stop()
        if self.reader is not None:
            self.reader.close()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
