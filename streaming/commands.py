"""What each CLI command does, given its settings (the CLI parses, these act)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping
from pathlib import Path

from streaming.errors import ConfigurationError, StreamingError
from streaming.settings import DEFAULT_CHECKPOINT_ROOT, ServiceSettings
from streaming.tracking import TrackingStore, configure_tracking

__all__ = ["batch", "produce", "run", "status"]

log = logging.getLogger("streaming")


def _tracking(env: Mapping[str, str]) -> TrackingStore:
    store = TrackingStore(env.get("MLFLOW_TRACKING_URI"))
    configure_tracking(store)
    return store


def run(settings: ServiceSettings, env: Mapping[str, str]) -> int:
    """Run the streaming query until it ends, fails, or gets SIGTERM/SIGINT.

    Returns:
        0 after a clean stop or an ``available-now`` drain; 1 when the query failed.
    """
    from mlflow.tracking import MlflowClient
    from pyspark.errors import StreamingQueryException

    from streaming.metrics import ServiceMetrics
    from streaming.service import InferenceService, stop_on_signals
    from streaming.spark_session import command_session

    store = _tracking(env)
    client = MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)
    with command_session(
        f"streaming-inference:{settings.query_name}",
        settings.master,
        settings.spark_conf,
        env.get("SPARK_LOG_LEVEL", "WARN"),
    ) as spark:
        service = InferenceService(spark, settings, client, ServiceMetrics())
        with stop_on_signals(service):
            service.start()
            try:
                service.run_until_stopped()
            except StreamingQueryException as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else "unknown error"
                print(
                    f"error: query {settings.query_name} failed: {first} "
                    f"(restart to resume from {settings.checkpoint_dir})",
                    file=sys.stderr,
                )
                return 1
    return 0


def batch(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Score a table with a registered model into a Delta predictions table."""
    from mlflow.tracking import MlflowClient

    from streaming.batch_scoring import read_input_table, write_batch_predictions
    from streaming.cli import spark_conf_options
    from streaming.model_provider import ModelProvider
    from streaming.spark_session import command_session

    source = args.input or env.get("STREAMING_INPUT")
    model_uri = args.model_uri or env.get("STREAMING_MODEL_URI")
    output = args.predictions_table or env.get("STREAMING_PREDICTIONS_TABLE")
    for flag, value in (
        ("--input", source),
        ("--model-uri", model_uri),
        ("--predictions-table", output),
    ):
        if not value:
            raise StreamingError(f"{flag} is required")
    assert source and model_uri and output
    store = _tracking(env)
    conf = spark_conf_options(args.conf or [])
    client = MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)
    with command_session(
        "streaming-inference:batch",
        args.master or env.get("STREAMING_MASTER"),
        conf,
        env.get("SPARK_LOG_LEVEL", "WARN"),
    ) as spark:
        model = ModelProvider(spark, model_uri, client).start()
        table = read_input_table(spark, source, args.input_format)
        count = write_batch_predictions(spark, table, model, output)
    log.info("scored %d rows of %s with %s into %s", count, source, model.identity, output)
    print(f"{count} predictions written to {output} by {model.identity}")
    return 0


def status(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Print lag per partition, the last batch and the model version that scored it."""
    from streaming.status import read_status

    query_name = args.query_name or env.get("STREAMING_QUERY_NAME", "inference")
    checkpoint = Path(
        args.checkpoint or env.get("STREAMING_CHECKPOINT") or DEFAULT_CHECKPOINT_ROOT / query_name
    )
    if not checkpoint.exists():
        raise ConfigurationError(
            f"no checkpoint at {checkpoint}: give --checkpoint or --query-name"
        )
    result = read_status(
        checkpoint,
        args.bootstrap_servers or env.get("STREAMING_BOOTSTRAP_SERVERS"),
        args.predictions_table or env.get("STREAMING_PREDICTIONS_TABLE"),
        app_id=f"streaming-inference:{query_name}:predictions",
    )
    print(result.render())
    return 0


def produce(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Send synthetic listing events (every ``--malformed-every``-th one malformed)."""
    from streaming.producer import listing_events, send_events

    bootstrap = args.bootstrap_servers or env.get("STREAMING_BOOTSTRAP_SERVERS")
    topic = args.topic or env.get("STREAMING_TOPIC")
    if not bootstrap or not topic:
        raise StreamingError("--bootstrap-servers and --topic are required")
    events = listing_events(args.count, args.seed, args.malformed_every)
    sent = send_events(bootstrap, topic, events)
    print(f"sent {sent} events to {topic}")
    return 0
