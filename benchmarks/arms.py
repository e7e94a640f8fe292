"""The arms: what reads the topic and writes predictions, each measured the same way.

Every arm is started, made ready, and finished: an ``available-now`` arm finishes when it has
drained its topic, a continuous one is stopped; ``close`` stops whatever still runs. The Spark
arms share the run's session; the hand-written consumer is a process of its own.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO, Any, Protocol

import mlflow
import mlflow.spark
import numpy as np
from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.types import StructType

from benchmarks.consumer import READY, ConsumerRun
from benchmarks.deltalog import LatencySample, commit_latencies, rows_committed
from benchmarks.figures import (
    CEILING,
    CEILING_MODEL,
    CONSUMER,
    OTHER_PHASE,
    SERVICE_MLLIB,
    SERVICE_MLLIB_MALFORMED,
    SERVICE_PYFUNC,
)
from benchmarks.memory import PeakMemory
from benchmarks.plainjob import start_plain_query
from benchmarks.polling import last_line, wait_until
from benchmarks.registry import BenchmarkModels
from benchmarks.sparkjobs import SparkJobs
from models.experiments import registry_client
from streaming.ops.metrics import ServiceMetrics
from streaming.parse.schema import event_schema_from_signature
from streaming.query.service import InferenceService
from streaming.settings import ServiceSettings, Trigger

__all__ = ["Arm", "ArmRun", "Workbench", "batch_phases_ms", "make_arm"]

_READY_TIMEOUT_S = 300
_WHOLE_BATCH = "triggerExecution"


@dataclass(frozen=True)
class ArmRun:
    """What an arm did between its start and its finish.

    Attributes:
        started_s: Epoch seconds when it started reading (query start, consumer start).
        finished_s: Epoch seconds when its last write was done.
        batches: Micro-batches that read records (or consumer writes).
        peak_rss_bytes: Peak resident memory of the process tree doing the work.
        spark_jobs: Spark jobs its batches ran (``None`` without Spark).
        spilled_bytes: Bytes those jobs spilled to disk (``None`` without Spark).
        phases_ms: Median milliseconds per phase of a micro-batch that read records, from
            Spark's progress reports (``durationMs``: ``triggerExecution`` is the whole batch,
            ``addBatch`` the write); empty without micro-batches.
    """

    started_s: float
    finished_s: float
    batches: int
    peak_rss_bytes: int
    spark_jobs: int | None
    spilled_bytes: int | None = None
    phases_ms: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.finished_s - self.started_s


def batch_phases_ms(progress: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The median of each ``durationMs`` phase over the given progress reports, slowest first,
    and of ``other``: the part of each batch's ``triggerExecution`` that no phase names (the
    engine's own bookkeeping between them).

    Spark keeps the last ``spark.sql.streaming.numRecentProgressUpdates`` (100) reports, so a
    long run gives its last hundred batches.
    """
    phases: dict[str, list[float]] = {}
    for report in progress:
        durations = {phase: float(ms) for phase, ms in (report.get("durationMs") or {}).items()}
        whole = durations.get(_WHOLE_BATCH)
        if whole is not None:
            named = sum(ms for phase, ms in durations.items() if phase != _WHOLE_BATCH)
            durations[OTHER_PHASE] = max(whole - named, 0.0)
        for phase, ms in durations.items():
            phases.setdefault(phase, []).append(ms)
    medians = {phase: float(np.median(values)) for phase, values in phases.items()}
    return dict(sorted(medians.items(), key=lambda item: -item[1]))


@dataclass
class Workbench:
    """What every arm of a run shares.

    Attributes:
        spark: The session of the in-process arms (its UI on, for the job counts).
        models: The registered models.
        bootstrap: The broker.
        work_dir: Where tables, checkpoints and logs go.
        checkout: The project's checkout (working directory of the processes).
        env: Environment of the processes started.
        python: The interpreter of the processes started.
    """

    spark: SparkSession
    models: BenchmarkModels
    bootstrap: str
    work_dir: Path
    checkout: Path
    env: Mapping[str, str]
    python: str

    @cached_property
    def jobs(self) -> SparkJobs:
        return SparkJobs.of(self.spark)

    @cached_property
    def pipeline(self) -> PipelineModel:
        """The MLlib model, loaded once."""
        model = mlflow.spark.load_model(self.models.mllib_uri)
        assert isinstance(model, PipelineModel)
        return model

    @cached_property
    def event_schema(self) -> StructType:
        """The JSON schema of an event, from the MLlib model's signature."""
        uri = self.models.mllib_uri
        signature = mlflow.models.get_model_info(uri).signature
        return event_schema_from_signature(signature, uri).json_schema()

    def folder(self, label: str) -> Path:
        """A new folder of the work directory for one arm's tables and checkpoint."""
        path = self.work_dir / "arms" / label
        path.mkdir(parents=True)
        return path


class Arm(Protocol):
    """One way of turning the topic's events into predictions readers can see."""

    def start(self) -> None: ...

    def wait_ready(self) -> None: ...

    def finish(self, timeout_s: float) -> ArmRun: ...

    def close(self) -> None: ...

    def landed(self) -> int:
        """Input records whose output readers can see so far."""
        ...

    def latencies(self) -> LatencySample:
        """Per output, when readers could see it minus its input's Kafka timestamp."""
        ...


class _DeltaOutput:
    """An arm whose predictions land in a Delta table."""

    table: Path

    def landed(self) -> int:
        return rows_committed(self.table)

    def latencies(self) -> LatencySample:
        return commit_latencies(self.table)


class _StreamingArm(_DeltaOutput):
    """An arm that is a streaming query on the run's session."""

    def __init__(self, bench: Workbench, topic: str, trigger: Trigger, label: str) -> None:
        self.bench = bench
        self.topic = topic
        self.trigger = trigger
        self.folder = bench.folder(label)
        self.label = label
        self.table = self.folder / "table"
        self.memory = PeakMemory()
        self.query: StreamingQuery | None = None
        self.started_s = 0.0

    def _start_query(self) -> StreamingQuery:
        raise NotImplementedError

    def _end_query(self, query: StreamingQuery, timeout_s: float) -> None:
        if not self.trigger.available_now:
            query.stop()
        elif not query.awaitTermination(timeout_s):  # type: ignore[arg-type]
            raise TimeoutError(f"{self.label} did not drain {self.topic} within {timeout_s:.0f}s")
        exception = query.exception()
        if exception is not None:
            raise exception

    def start(self) -> None:
        self.memory.start()
        self.query = self._start_query()
        self.started_s = time.time()

    def wait_ready(self) -> None:
        query = self.query
        assert query is not None
        wait_until(
            lambda: not query.isActive or not query.status["message"].startswith("Initializing"),
            f"start of {self.label}",
            _READY_TIMEOUT_S,
        )

    def finish(self, timeout_s: float) -> ArmRun:
        query = self.query
        assert query is not None
        self._end_query(query, timeout_s)
        finished = time.time()
        reads = [p for p in query.recentProgress if p["numInputRows"] > 0]
        group = self.bench.jobs.in_group(str(query.runId))
        return ArmRun(
            started_s=self.started_s,
            finished_s=finished,
            batches=len({p["batchId"] for p in reads}),
            peak_rss_bytes=self.memory.stop(),
            spark_jobs=group.jobs,
            spilled_bytes=group.spilled_bytes,
            phases_ms=batch_phases_ms(reads),
        )

    def close(self) -> None:
        self.memory.stop()
        if self.query is not None and self.query.isActive:
            self.query.stop()


class SparkQueryArm(_StreamingArm):
    """Kafka -> ``from_json`` with the model's schema -> [MLlib ``transform``] -> Delta, plain.

    It writes the parsed events (with their prediction when scoring), so scoring only adds work.
    """

    def __init__(
        self, bench: Workbench, topic: str, trigger: Trigger, label: str, score: bool
    ) -> None:
        super().__init__(bench, topic, trigger, label)
        self.score = score

    def _start_query(self) -> StreamingQuery:
        return start_plain_query(
            self.bench.spark,
            self.bench.bootstrap,
            self.topic,
            self.bench.event_schema,
            self.bench.pipeline if self.score else None,
            self.trigger,
            self.folder,
            self.label,
        )


class ServiceArm(_StreamingArm):
    """The service itself (``InferenceService``) on the run's session."""

    def __init__(
        self, bench: Workbench, topic: str, trigger: Trigger, label: str, model_uri: str
    ) -> None:
        super().__init__(bench, topic, trigger, label)
        self.model_uri = model_uri
        self.service: InferenceService | None = None

    def _start_query(self) -> StreamingQuery:
        # Validated from values only: the environment is not read here.
        settings = ServiceSettings.model_validate(
            {
                "bootstrap_servers": self.bench.bootstrap,
                "model_uri": self.model_uri,
                "predictions_table": str(self.table),
                "quarantine_table": str(self.folder / "quarantine"),
                "topic": (self.topic,),
                "checkpoint": str(self.folder / "checkpoint"),
                "query_name": self.label,
                "trigger": self.trigger,
                "home": self.bench.checkout,
                "model_poll_seconds": 3600.0,
            }
        )
        client = registry_client(self.bench.models.store)
        self.service = InferenceService(self.bench.spark, settings, client, ServiceMetrics())
        return self.service.start()

    def _end_query(self, query: StreamingQuery, timeout_s: float) -> None:
        service = self.service
        assert service is not None
        if not self.trigger.available_now:
            service.request_stop()
        service.run_until_stopped()


class ConsumerArm(_DeltaOutput):
    """The hand-written consumer (``benchmarks.consumer``) as a process of its own."""

    def __init__(self, bench: Workbench, topic: str, expected: int, label: str) -> None:
        self.bench = bench
        self.topic = topic
        self.expected = expected
        folder = bench.folder(label)
        self.table = folder / "table"
        self.log = folder / "consumer.log"
        self.process: subprocess.Popen[str] | None = None
        self.memory: PeakMemory | None = None

    def start(self) -> None:
        command = [
            self.bench.python, "-m", "benchmarks.consumer",
            "--bootstrap-servers", self.bench.bootstrap,
            "--topic", self.topic,
            "--model-uri", self.bench.models.sklearn_uri,
            "--tracking-uri", self.bench.models.store.tracking_uri,
            "--table", str(self.table),
            "--expect", str(self.expected),
        ]  # fmt: skip
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.bench.checkout,
                env=dict(self.bench.env),
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        self.memory = PeakMemory(self.process.pid).start()

    def _stdout(self) -> IO[str]:
        assert self.process is not None and self.process.stdout is not None
        return self.process.stdout

    def wait_ready(self) -> None:
        for line in self._stdout():
            if line.strip() == READY:
                return
        raise RuntimeError(f"the consumer did not start: {last_line(self.log)}")

    def finish(self, timeout_s: float) -> ArmRun:
        assert self.process is not None and self.memory is not None
        output, _ = self.process.communicate(timeout=timeout_s)
        peak = self.memory.stop()
        if self.process.returncode != 0:
            raise RuntimeError(f"the consumer failed: {last_line(self.log)}")
        run = ConsumerRun(**json.loads(output.strip().splitlines()[-1]))
        return ArmRun(run.started_s, run.finished_s, run.batches, peak, None)

    def close(self) -> None:
        if self.memory is not None:
            self.memory.stop()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def make_arm(
    name: str, bench: Workbench, topic: str, trigger: Trigger, expected: int, label: str
) -> Arm:
    """The arm called ``name``, reading ``topic``; ``label`` names its folder and query.

    Args:
        expected: Records the topic will hold (the consumer stops after reading them).
    """
    if name in (CEILING, CEILING_MODEL):
        return SparkQueryArm(bench, topic, trigger, label, score=name == CEILING_MODEL)
    if name in (SERVICE_MLLIB, SERVICE_MLLIB_MALFORMED):
        return ServiceArm(bench, topic, trigger, label, bench.models.mllib_uri)
    if name == SERVICE_PYFUNC:
        return ServiceArm(bench, topic, trigger, label, bench.models.sklearn_uri)
    if name == CONSUMER:
        return ConsumerArm(bench, topic, expected, label)
    raise ValueError(f"unknown arm {name!r}")
