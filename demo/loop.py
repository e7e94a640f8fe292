"""The whole loop on the embedded defaults, as ``scripts/demo`` runs it.

Broker up (the project's KRaft broker on 127.0.0.1), a model trained and registered if the
registry has no champion yet, the service started as users start it (``python -m streaming run``),
events produced (a few malformed), every offset waited for, a clean SIGTERM stop, then the
predictions and the quarantine shown. Re-runnable: each run adds new events to the same topic,
tables and checkpoint.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from infra.paths import ProjectHome
from streaming.errors import StreamingError

__all__ = ["main"]

# The demo runs from the checkout (scripts/demo); its state lives under the project home.
CHECKOUT = Path(__file__).resolve().parent.parent
BROKER_SCRIPT = CHECKOUT / "scripts" / "kafka-broker"
HOME = ProjectHome.from_environment(os.environ)
DEMO_DIR = HOME.local / "demo"
QUERY_NAME = "demo"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scripts/demo", description=(__doc__ or "").split("\n")[0])
    p.add_argument("--events", type=int, default=500, help="events to produce (default 500)")
    p.add_argument("--malformed-every", type=int, default=50, help="every Nth event is bad")
    p.add_argument("--topic", default=os.environ.get("STREAMING_TOPIC", "listings"))
    p.add_argument("--model-name", default=os.environ.get("MODELS_MODEL_NAME", "listing-price"))
    p.add_argument("--keep-broker", action="store_true", help="leave the broker running")
    p.add_argument("--timeout", type=float, default=600, help="seconds to wait for the drain")
    return p


def _step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def _broker_port() -> str:
    return os.environ.get("KAFKA_PORT", "9092")


def _ensure_topic(bootstrap: str, topic: str) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    try:
        if topic not in admin.list_topics():
            admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def _ensure_model(model_name: str) -> str:
    from infra.spark import command_session
    from infra.tracking import TrackingStore
    from models.registry import ensure_registered_model

    with command_session(
        "streaming-inference:demo-model", HOME.spark_jars, "local[*]", log_level="ERROR"
    ) as spark:
        return ensure_registered_model(
            spark,
            TrackingStore(HOME.mlflow_store, os.environ.get("MLFLOW_TRACKING_URI")),
            model_name,
            str(DEMO_DIR / "listings"),
        )


def _run_service(bootstrap: str, topic: str, model_uri: str) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "streaming", "run",
        "--bootstrap-servers", bootstrap,
        "--topic", topic,
        "--model-uri", model_uri,
        "--predictions-table", str(DEMO_DIR / "predictions"),
        "--quarantine-table", str(DEMO_DIR / "quarantine"),
        "--query-name", QUERY_NAME,
        "--trigger", "2s",
        "--model-poll-seconds", "10",
        "--master", "local[*]",
    ]  # fmt: skip
    print("$ " + " ".join(command[1:]), flush=True)
    env = {**os.environ, "STREAMING_SPARK_LOG_LEVEL": "ERROR", "STREAMING_HOME": str(HOME.root)}
    return subprocess.Popen(command, env=env, cwd=HOME.root)


def _produce(bootstrap: str, topic: str, events: int, malformed_every: int) -> None:
    """Synthetic listing events, as users send them (``python -m streaming produce``)."""
    command = [
        sys.executable, "-m", "streaming", "produce",
        "--bootstrap-servers", bootstrap,
        "--topic", topic,
        "--synthetic", str(events),
        "--seed", str(int(time.time())),  # new listings on every run
    ]  # fmt: skip
    if malformed_every > 0:
        command += ["--malformed-share", str(1 / malformed_every)]
    print("$ " + " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True, env={**os.environ, "STREAMING_HOME": str(HOME.root)})


def _wait_for_drain(bootstrap: str, service: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Wait until the query has committed every offset the topic holds."""
    from streaming.query.status import read_status

    checkpoint = HOME.checkpoints / QUERY_NAME
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise StreamingError(f"the service exited with code {service.returncode}; see above")
        if (checkpoint / "offsets").is_dir():
            status = read_status(checkpoint, bootstrap, None, app_id="")
            if status.partitions and all(p.lag == 0 for p in status.partitions):
                return
        time.sleep(1)
    raise StreamingError(f"the service did not drain the topic within {timeout_s:.0f}s")


def _show_tables() -> None:
    from deltalake import DeltaTable

    predictions = DeltaTable(str(DEMO_DIR / "predictions")).to_pandas()
    quarantine = DeltaTable(str(DEMO_DIR / "quarantine")).to_pandas()
    newest = predictions.sort_values(["batch_id", "offset"], ascending=False)
    columns = ["key", "prediction", "model_name", "model_version", "partition", "offset"]
    _step(f"predictions: {len(predictions)} rows in {DEMO_DIR / 'predictions'} (newest 10)")
    print(newest[[c for c in columns if c in newest.columns]].head(10).to_string(index=False))
    _step(f"quarantine: {len(quarantine)} rows in {DEMO_DIR / 'quarantine'}")
    if len(quarantine):
        print(quarantine.groupby("error_kind").size().to_string())
    print(
        "\nRead them with Spark SQL (SELECT * FROM delta.`<path>`), delta-rs or DuckDB "
        "(delta_scan('<path>')); `python -m streaming status --query-name demo "
        f"--bootstrap-servers 127.0.0.1:{_broker_port()}` shows the lag."
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    bootstrap = f"127.0.0.1:{_broker_port()}"
    service: subprocess.Popen[bytes] | None = None
    try:
        _step(f"Kafka broker on {bootstrap}")
        subprocess.run([str(BROKER_SCRIPT), "start"], check=True)
        _ensure_topic(bootstrap, args.topic)

        _step(f"model {args.model_name}@champion (trained and registered if missing)")
        model_uri = _ensure_model(args.model_name)
        print(model_uri)

        _step("the streaming service")
        service = _run_service(bootstrap, args.topic, model_uri)

        _step(f"{args.events} events to {args.topic}, every {args.malformed_every}th malformed")
        _produce(bootstrap, args.topic, args.events, args.malformed_every)

        _step("waiting until every offset is committed")
        _wait_for_drain(bootstrap, service, args.timeout)
        service.send_signal(signal.SIGTERM)
        code = service.wait(120)
        print(f"service stopped on SIGTERM with exit code {code}")
        service = None
        _show_tables()
        return code
    except (StreamingError, subprocess.CalledProcessError) as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1
    finally:
        if service is not None and service.poll() is None:
            service.send_signal(signal.SIGTERM)
            service.wait(120)
        if not args.keep_broker:
            subprocess.run([str(BROKER_SCRIPT), "stop"], check=False)


if __name__ == "__main__":
    sys.exit(main())
