"""The service started as users start it, timed from ``Popen`` to its first prediction."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from benchmarks.deltalog import read_commits, rows_committed
from benchmarks.figures import Startup, recording_failure
from benchmarks.memory import PeakMemory
from benchmarks.polling import last_line, say, wait_until

__all__ = ["ServiceProcess", "measure_startup"]

_STOP_TIMEOUT_S = 120
T = TypeVar("T")


@dataclass(frozen=True)
class ServiceProcess:
    """How to start ``python -m streaming run`` for the benchmark.

    Attributes:
        python: The interpreter.
        checkout: The project's checkout (working directory and home: jars, no checkpoints).
        env: Its environment (``MLFLOW_TRACKING_URI`` and ``PYSPARK_PYTHON`` set).
        bootstrap: The broker.
        model_uri: The model to serve.
    """

    python: str
    checkout: Path
    env: Mapping[str, str]
    bootstrap: str
    model_uri: str

    def command(self, topic: str, folder: Path, query_name: str) -> list[str]:
        """The command line, with its tables and checkpoint under ``folder``."""
        return [
            self.python, "-m", "streaming", "run",
            "--bootstrap-servers", self.bootstrap,
            "--topic", topic,
            "--model-uri", self.model_uri,
            "--predictions-table", str(folder / "predictions"),
            "--quarantine-table", str(folder / "quarantine"),
            "--checkpoint", str(folder / "checkpoint"),
            "--query-name", query_name,
            "--trigger", "1s",
            "--home", str(self.checkout),
        ]  # fmt: skip


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
            raise RuntimeError(f"the service exited with {process.returncode}: {last_line(log)}")
        return condition()

    return check


def measure_startup(
    service: ServiceProcess, backlog: str, topic: str, events: int, folder: Path, timeout_s: float
) -> Startup:
    """Start the service on a topic holding ``events`` records; time its first prediction.

    It runs on until every record is written (so the peak memory covers the whole backlog),
    then gets SIGTERM.
    """
    figure = Startup(backlog, events)
    say(f"startup: python -m streaming run on {events} waiting events")
    folder.mkdir(parents=True)
    log = folder / "service.log"
    tables = (folder / "predictions", folder / "quarantine")
    with recording_failure(figure), log.open("wb") as output:
        began = time.time()
        process = subprocess.Popen(
            service.command(topic, folder, f"startup-{backlog}"),
            cwd=service.checkout,
            env=dict(service.env),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
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
