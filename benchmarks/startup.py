"""The service started as users start it, and a plain Spark job started the same way, each
timed from ``Popen`` to its first prediction."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from benchmarks.deltalog import read_commits, rows_committed
from benchmarks.figures import CEILING, CEILING_MODEL, SERVICE_MLLIB, Startup, recording_failure
from benchmarks.memory import PeakMemory
from benchmarks.polling import last_line, say, wait_until

__all__ = [
    "Launch",
    "PlainJobProcess",
    "ServiceProcess",
    "StartedArm",
    "measure_startup",
    "started_arm",
]

_STOP_TIMEOUT_S = 120
_TRIGGER = "1s"
T = TypeVar("T")


@dataclass(frozen=True)
class Launch:
    """What every process of the start-up part is started with.

    Attributes:
        python: The interpreter.
        checkout: The project's checkout (working directory and home: jars, no checkpoints).
        env: Its environment (``MLFLOW_TRACKING_URI`` and ``PYSPARK_PYTHON`` set).
        bootstrap: The broker.
        model_uri: The model to serve.
        tracking_uri: The MLflow store holding it.
    """

    python: str
    checkout: Path
    env: Mapping[str, str]
    bootstrap: str
    model_uri: str
    tracking_uri: str


class StartedArm(Protocol):
    """An arm as a process of its own, started on a waiting backlog."""

    @property
    def arm(self) -> str: ...

    @property
    def launch(self) -> Launch: ...

    def command(self, topic: str, folder: Path, name: str) -> list[str]:
        """The command line, with its tables and checkpoint under ``folder``."""
        ...

    def tables(self, folder: Path) -> tuple[Path, ...]:
        """Its tables under ``folder``; the first holds the predictions."""
        ...


@dataclass(frozen=True)
class ServiceProcess:
    """``python -m streaming run``, as users start it."""

    launch: Launch
    arm: str = SERVICE_MLLIB

    def command(self, topic: str, folder: Path, name: str) -> list[str]:
        """The command line, with its tables and checkpoint under ``folder``."""
        predictions, quarantine = self.tables(folder)
        return [
            self.launch.python, "-m", "streaming", "run",
            "--bootstrap-servers", self.launch.bootstrap,
            "--topic", topic,
            "--model-uri", self.launch.model_uri,
            "--predictions-table", str(predictions),
            "--quarantine-table", str(quarantine),
            "--checkpoint", str(folder / "checkpoint"),
            "--query-name", name,
            "--trigger", _TRIGGER,
            "--home", str(self.launch.checkout),
        ]  # fmt: skip

    def tables(self, folder: Path) -> tuple[Path, ...]:
        return folder / "predictions", folder / "quarantine"


@dataclass(frozen=True)
class PlainJobProcess:
    """``python -m benchmarks.plainjob``: the ceiling arm's plain query (with the model for
    ``ceiling-model``) in a process of its own, on the same session settings as the service.

    Attributes:
        schema: The events' JSON schema (Spark's JSON), as the ceiling arms parse them.
    """

    launch: Launch
    arm: str
    schema: str

    def command(self, topic: str, folder: Path, name: str) -> list[str]:
        """The command line, with its table and checkpoint under ``folder``."""
        model = (
            ["--model-uri", self.launch.model_uri, "--tracking-uri", self.launch.tracking_uri]
            if self.arm == CEILING_MODEL
            else []
        )
        return [
            self.launch.python, "-m", "benchmarks.plainjob",
            "--bootstrap-servers", self.launch.bootstrap,
            "--topic", topic,
            "--schema", self.schema,
            *model,
            "--folder", str(folder),
            "--trigger", _TRIGGER,
            "--home", str(self.launch.checkout),
        ]  # fmt: skip

    def tables(self, folder: Path) -> tuple[Path, ...]:
        return (folder / "table",)


def started_arm(arm: str, launch: Launch, schema: str) -> StartedArm:
    """The process that starts ``arm``: the service, or a ceiling arm parsing events of
    ``schema`` (Spark's JSON of a ``StructType``)."""
    if arm == SERVICE_MLLIB:
        return ServiceProcess(launch)
    if arm in (CEILING, CEILING_MODEL):
        return PlainJobProcess(launch, arm, schema)
    raise ValueError(f"no start-up for arm {arm}")


def _first_prediction_ms(table: Path) -> int:
    """Commit time of the first commit holding rows; 0 while there is none."""
    return next((c.timestamp_ms for c in read_commits(table) if c.rows), 0)


def _last_commit_ms(*tables: Path) -> int:
    return max(c.timestamp_ms for table in tables for c in read_commits(table))


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _while_running(
    process: subprocess.Popen[bytes], log: Path, condition: Callable[[], T]
) -> Callable[[], T]:
    """``condition``, failing as soon as the process has exited."""

    def check() -> T:
        if process.poll() is not None:
            raise RuntimeError(f"the process exited with {process.returncode}: {last_line(log)}")
        return condition()

    return check


def measure_startup(
    started: StartedArm, backlog: str, topic: str, events: int, folder: Path, timeout_s: float
) -> Startup:
    """Start an arm's process on a topic holding ``events`` records; time its first prediction.

    It runs on until every record is written (so the peak memory covers the whole backlog),
    then gets SIGTERM.
    """
    figure = Startup(backlog, events, started.arm)
    command = started.command(topic, folder, f"startup-{backlog}")
    say(f"startup: {started.arm} (python -m {command[2]}) on {events} waiting events")
    folder.mkdir(parents=True)
    log = folder / "process.log"
    tables = started.tables(folder)
    launch = started.launch
    with recording_failure(figure), log.open("wb") as output:
        began = time.time()
        process = subprocess.Popen(
            command, cwd=launch.checkout, env=dict(launch.env), stdout=output,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        with PeakMemory(process.pid) as memory:
            try:
                first_ms = wait_until(
                    _while_running(process, log, lambda: _first_prediction_ms(tables[0])),
                    "prediction",
                    timeout_s,
                )
                wait_until(
                    _while_running(
                        process, log, lambda: sum(map(rows_committed, tables)) >= events
                    ),
                    "drain of the backlog",
                    timeout_s,
                )
            finally:
                _stop(process)
        figure.first_prediction_s = first_ms / 1000 - began
        figure.drained_s = _last_commit_ms(*tables) / 1000 - began
        figure.peak_rss_bytes = memory.peak_bytes
    return figure
