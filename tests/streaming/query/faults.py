"""Fault injection for the service as users run it (``python -m streaming run`` in its own process
group): kill -9 at random moments and aimed between a Delta commit and the checkpoint commit, the
broker restarted, while a producer keeps sending. Kafka's own exactly-once system tests work the
same way: a known input, faults, then the output checked against the input (the verifier).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaProducer

from infra.tracking import TrackingStore
from tests.conftest import PROJECT_ROOT
from tests.support import wait_until


class ServiceProcess:
    """One ``python -m streaming run`` with its options, logging to a file per start."""

    def __init__(self, tmp_path: Path, store: TrackingStore, options: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": store.tracking_uri,
            "PYSPARK_PYTHON": sys.executable,
            "STREAMING_SPARK_LOG_LEVEL": "ERROR",
        }
        self.args = [sys.executable, "-m", "streaming", "run"]
        for key, value in options.items():
            self.args += [f"--{key}", value]
        self.runs = 0

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        self.runs += 1
        log = open(self.tmp_path / f"service-{self.runs}.log", "wb")  # noqa: SIM115
        return subprocess.Popen(
            [*self.args, *extra],
            env=self.env,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self, run: int | None = None) -> str:
        path = self.tmp_path / f"service-{run or self.runs}.log"
        return path.read_text(errors="replace")


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL to the whole process group: the Python driver, its JVM and Python workers."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)


class DeltaLog:
    """A Delta table's commits as files, read without opening the table (cheap to poll)."""

    def __init__(self, table: Path) -> None:
        self.log = table / "_delta_log"

    def newest(self) -> int:
        """The newest commit version (-1 when the table does not exist yet)."""
        versions = [int(p.name[:20]) for p in self.log.glob("*.json") if p.name[:20].isdigit()]
        return max(versions, default=-1)

    def has(self, version: int) -> bool:
        return (self.log / f"{version:020d}.json").exists()

    def batch_of(self, version: int) -> int | None:
        """The streaming batch id that commit ``version`` wrote (its ``userMetadata`` record)."""
        for line in (self.log / f"{version:020d}.json").read_text().splitlines():
            metadata = json.loads(line).get("commitInfo", {}).get("userMetadata")
            if metadata:
                return int(json.loads(metadata)["batch_id"])
        return None


class LiveProducer(threading.Thread):
    """Sends events ``make(i)`` at ``rate`` per second until ``finish``, riding out broker restarts.

    Idempotent with unlimited retries, so a broker restart delays records but neither loses nor
    doubles them; every send is acknowledged (``acks=all``) before ``finish`` returns.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        make: Callable[[int], bytes | None],
        start_key: int,
        rate: float,
    ) -> None:
        super().__init__(name="live-producer", daemon=True)
        self.bootstrap, self.topic, self.make = bootstrap, topic, make
        self.start_key, self.rate = start_key, rate
        self.errors: list[BaseException] = []
        self.sent = 0
        self._stop_sending = threading.Event()

    def run(self) -> None:
        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            linger_ms=20,
            delivery_timeout_ms=600_000,
            max_block_ms=600_000,
            reconnect_backoff_max_ms=1000,
        )
        began = time.monotonic()
        try:
            while not self._stop_sending.is_set():
                due = began + self.sent / self.rate
                if (wait := due - time.monotonic()) > 0:
                    time.sleep(wait)
                key = f"listing-{self.start_key + self.sent}".encode()
                value = self.make(self.start_key + self.sent)
                producer.send(self.topic, key=key, value=value).add_errback(self.errors.append)
                self.sent += 1
            producer.flush()
        except BaseException as e:  # reported by finish()
            self.errors.append(e)
        finally:
            producer.close()

    def halt(self) -> None:
        """Stop sending (the thread then flushes what it sent and ends)."""
        self._stop_sending.set()

    def finish(self, timeout_s: float = 600) -> int:
        """Stop sending and wait for every acknowledgement; returns how many were sent."""
        self.halt()
        self.join(timeout_s)
        assert not self.is_alive(), "the producer did not finish"
        assert not self.errors, self.errors
        return self.sent


@dataclass
class Campaign:
    """A sequence of faults against one service, with its counts for the fault report."""

    service: ServiceProcess
    predictions: Path
    checkpoint: Path
    restart_broker: Callable[[float], None]
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    kills: int = 0
    aimed_hits: int = 0
    broker_restarts: int = 0
    sigterms: int = 0
    first_commit_s: list[float] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    def running(self) -> subprocess.Popen[bytes]:
        """The service, started (and waited for until its first new commit) when it is not."""
        if self.process is None:
            began = time.monotonic()
            newest = DeltaLog(self.predictions).newest()
            self.process = self.service.start("--trigger", "500ms")
            process = self.process
            wait_until(
                lambda: (
                    _alive(process, self.service) and DeltaLog(self.predictions).newest() > newest
                ),
                "a batch committed after the start",
                timeout_s=240,
                interval_s=0.1,
            )
            self.first_commit_s.append(time.monotonic() - began)
        return self.process

    def kill_at_random(self, within_s: float) -> None:
        """kill -9 of the process group at a random moment.

        A stopped service is started and killed anywhere from the middle of its start-up to
        ``within_s`` after the time a start last took to its first commit: in start-up, in the
        re-run of a begun batch, or in a batch. A running one is killed within ``within_s``.
        """
        if self.process is None:
            typical = self.first_commit_s[-1] if self.first_commit_s else 30.0
            self.process = self.service.start("--trigger", "500ms")
            time.sleep(self.rng.uniform(typical / 2, typical + within_s))
            _alive(self.process, self.service)
        else:
            time.sleep(self.rng.uniform(0.1, within_s))
        self._kill()

    def kill_between_commits(self, attempts: int = 30) -> None:
        """kill -9 right after a batch's predictions commit, before its checkpoint commit.

        On restart the query re-runs that batch, which must write nothing twice (the replay
        path). Tries up to ``attempts`` batches; one whose checkpoint commit came first is missed.
        """
        process = self.running()
        table = DeltaLog(self.predictions)
        seen = table.newest()
        for _ in range(attempts):
            while not table.has(seen + 1):
                assert _alive(process, self.service)
                time.sleep(0.002)
            seen += 1
            batch = table.batch_of(seen)
            if batch is not None and not (self.checkpoint / "commits" / str(batch)).exists():
                self._kill()
                if not (self.checkpoint / "commits" / str(batch)).exists():
                    self.aimed_hits += 1
                return
        raise AssertionError(f"no kill landed between the commits in {attempts} batches")

    def stop_mid_stream(self, within_s: float) -> None:
        """SIGTERM at a random moment: the batch in flight completes, then exit code 0 with the
        whole process group gone, and the checkpoint at most one batch behind the table."""
        process = self.running()
        time.sleep(self.rng.uniform(0.1, within_s))
        process.send_signal(signal.SIGTERM)
        assert process.wait(120) == 0, self.service.log()
        self.process = None
        assert "stop requested" in self.service.log()
        assert group_members_after(process.pid, grace_s=10) == []
        table = DeltaLog(self.predictions)
        last_in_table = table.batch_of(table.newest())
        commits = [int(p.name) for p in (self.checkpoint / "commits").iterdir() if p.name.isdigit()]
        assert last_in_table is not None and last_in_table <= max(commits, default=-1) + 1
        self.sigterms += 1

    def restart_the_broker(self, down_s: float = 3.0) -> None:
        """Stop the broker while the service runs and events flow, then start it again; the
        service must ride it out and commit again."""
        process = self.running()
        self.restart_broker(down_s)
        self.broker_restarts += 1
        newest = DeltaLog(self.predictions).newest()
        wait_until(
            lambda: _alive(process, self.service) and DeltaLog(self.predictions).newest() > newest,
            "a batch committed after the broker restart",
            timeout_s=240,
            interval_s=0.2,
        )

    def drain_and_stop(self, produced: int) -> None:
        """Wait until the checkpoint has read all ``produced`` records, then SIGTERM (exit 0)."""
        from streaming.query.status import committed_offsets

        process = self.running()

        def read_everything() -> bool:
            assert _alive(process, self.service)
            _, ends = committed_offsets(self.checkpoint)
            return sum(o for parts in ends.values() for o in parts.values()) >= produced

        wait_until(read_everything, f"the service to read all {produced} records", 900, 1.0)
        process.send_signal(signal.SIGTERM)
        assert process.wait(120) == 0, self.service.log()
        self.process = None

    def abandon(self) -> None:
        """After a failure: leave no service behind."""
        if self.process is not None and self.process.poll() is None:
            kill_group(self.process)
        self.process = None

    def _kill(self) -> None:
        assert self.process is not None
        kill_group(self.process)
        self.process = None
        self.kills += 1


def _alive(process: subprocess.Popen[bytes], service: ServiceProcess) -> bool:
    assert process.poll() is None, f"service exited with {process.returncode}:\n{service.log()}"
    return True


def group_members_after(session: int, grace_s: float) -> list[str]:
    """Processes of ``session`` still alive after ``grace_s`` (Python workers exit on their own
    once the JVM is gone, a moment after it)."""
    deadline = time.monotonic() + grace_s
    while True:
        found = subprocess.run(
            ["ps", "-o", "pid=,args=", "-g", str(session)], capture_output=True, text=True
        )
        members = [line.strip()[:200] for line in found.stdout.splitlines() if line.strip()]
        if not members or time.monotonic() > deadline:
            return members
        time.sleep(0.5)
