"""Command line: ``python -m streaming run|batch|status|produce``.

The edge of the program: the only place that reads the environment. Every option can be given
as a flag, as an environment variable ``STREAMING_<OPTION>`` (e.g. ``STREAMING_MODEL_URI``) or
in a TOML file named by ``--config``; flags win over the environment, which wins over the file.
Kafka client options pass through as ``--kafka-option kafka.KEY=VALUE`` or as environment
variables ``STREAMING_KAFKA_<KEY>`` (``STREAMING_KAFKA_SASL_JAAS_CONFIG`` is
``kafka.sasl.jaas.config``); those holding credentials are kept secret.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from streaming.errors import StreamingError
from streaming.settings import Secret, ServiceSettings, is_secret_option, parse_trigger

__all__ = ["main"]

log = logging.getLogger("streaming")
ENV_PREFIX = "STREAMING_"
_KAFKA_ENV_PREFIX = "STREAMING_KAFKA_"


class _Options:
    """Looks an option up in the flags, then the environment, then the config file."""

    def __init__(self, args: argparse.Namespace, env: Mapping[str, str], file: Mapping[str, Any]):
        self.args, self.env, self.file = args, env, file

    def get(self, name: str, default: Any = None, convert: Callable[[str], Any] = str) -> Any:
        flag = getattr(self.args, name, None)
        if flag is not None:
            return flag
        env_value = self.env.get(ENV_PREFIX + name.upper())
        if env_value is not None:
            try:
                return convert(env_value)
            except ValueError as e:
                raise StreamingError(
                    f"{ENV_PREFIX}{name.upper()}={env_value!r} is not a valid value: {e}"
                ) from e
        if name.replace("_", "-") in self.file:
            return self.file[name.replace("_", "-")]
        return self.file.get(name, default)

    def require(self, name: str) -> Any:
        value = self.get(name)
        if value in (None, ""):
            flag = "--" + name.replace("_", "-")
            raise StreamingError(f"{flag} is required (or set {ENV_PREFIX}{name.upper()})")
        return value


def _load_config_file(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise StreamingError(f"cannot read --config {path}: {e}") from e


def kafka_options(flags: Sequence[str], env: Mapping[str, str]) -> dict[str, str | Secret]:
    """Kafka pass-through options from ``KEY=VALUE`` flags and ``STREAMING_KAFKA_*`` variables."""
    options: dict[str, str | Secret] = {}
    for name, value in env.items():
        if name.startswith(_KAFKA_ENV_PREFIX):
            key = "kafka." + name.removeprefix(_KAFKA_ENV_PREFIX).lower().replace("_", ".")
            options[key] = value
    for flag in flags:
        key, sep, value = flag.partition("=")
        if not sep or not key:
            raise StreamingError(f"--kafka-option {flag!r} must look like kafka.KEY=VALUE")
        options[key.strip()] = value
    return {k: Secret(str(v)) if is_secret_option(k) else v for k, v in options.items()}


def spark_conf_options(flags: Sequence[str]) -> dict[str, str]:
    """Spark settings from repeated ``--conf KEY=VALUE`` flags."""
    conf: dict[str, str] = {}
    for flag in flags:
        key, sep, value = flag.partition("=")
        if not sep or not key.strip():
            raise StreamingError(f"--conf {flag!r} must look like spark.KEY=VALUE")
        conf[key.strip()] = value
    return conf


def _positive_int(text: str) -> int:
    return int(text)


def build_service_settings(args: argparse.Namespace, env: Mapping[str, str]) -> ServiceSettings:
    """The service's settings from flags, environment and config file.

    Raises:
        StreamingError: a required option is missing or a value is invalid.
    """
    o = _Options(args, env, _load_config_file(args.config or env.get(ENV_PREFIX + "CONFIG")))
    topics = o.get("topic")
    checkpoint = o.get("checkpoint")
    max_offsets = o.get("max_offsets_per_trigger", convert=_positive_int)
    metrics_port = o.get("metrics_port", convert=int)
    spark_conf = spark_conf_options(args.conf or [])
    return ServiceSettings(
        bootstrap_servers=o.require("bootstrap_servers"),
        model_uri=o.require("model_uri"),
        predictions_table=str(o.require("predictions_table")),
        quarantine_table=str(o.require("quarantine_table")),
        topics=tuple(t for t in str(topics or "").split(",") if t),
        topic_pattern=o.get("topic_pattern"),
        checkpoint=str(checkpoint) if checkpoint else None,
        query_name=o.get("query_name", "inference"),
        trigger=parse_trigger(str(o.get("trigger", "5s"))),
        starting_offsets=o.get("starting_offsets", "earliest"),
        max_offsets_per_trigger=int(max_offsets) if max_offsets is not None else None,
        kafka_options=kafka_options(args.kafka_option or [], env),
        model_poll_seconds=float(o.get("model_poll_seconds", 30.0, convert=float)),
        dedup_watermark=o.get("dedup_watermark"),
        metrics_port=int(metrics_port) if metrics_port is not None else None,
        master=o.get("master"),
        spark_conf=spark_conf,
    )


def _add_run_options(p: argparse.ArgumentParser) -> None:
    # Also accepted after the command; SUPPRESS keeps a top-level --config from being reset.
    p.add_argument("--config", default=argparse.SUPPRESS, help="TOML file with option values")
    p.add_argument("--bootstrap-servers", help="Kafka HOST:PORT[,HOST:PORT]")
    p.add_argument("--topic", help="topic name(s), comma-separated")
    p.add_argument("--topic-pattern", help="subscribe to topics matching this Java regex")
    p.add_argument("--model-uri", help="models:/NAME@ALIAS (followed), models:/NAME/VERSION, ...")
    p.add_argument("--predictions-table", help="Delta table path of predictions")
    p.add_argument("--quarantine-table", help="Delta table path of quarantined records")
    p.add_argument("--checkpoint", help="checkpoint dir (default checkpoints/<query name>)")
    p.add_argument("--query-name", help="query name; also the Delta txnAppId (default inference)")
    p.add_argument("--trigger", help="interval (5s, 500ms, 1m) or available-now (default 5s)")
    p.add_argument("--starting-offsets", help="earliest (default), latest, or Spark's JSON form")
    p.add_argument("--max-offsets-per-trigger", type=int, help="cap on records per batch")
    p.add_argument("--model-poll-seconds", type=float, help="alias look-up interval (default 30)")
    p.add_argument("--dedup-watermark", help="drop repeated event_id within e.g. '10 minutes'")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port")
    p.add_argument("--master", help="Spark master when not under spark-submit (default local[*])")
    p.add_argument("--kafka-option", action="append", help="kafka.KEY=VALUE, repeatable")
    p.add_argument("--conf", action="append", help="Spark conf KEY=VALUE, repeatable")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m streaming", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="TOML file with option values (keys as the flags)")
    parser.add_argument("--log-level", default=os.environ.get("STREAMING_LOG_LEVEL", "INFO"))
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the streaming inference query")
    _add_run_options(run)

    batch = commands.add_parser("batch", help="score a Delta/Parquet table into a Delta table")
    batch.add_argument("--input", help="input table path (Delta, Parquet or CSV)")
    batch.add_argument("--input-format", choices=["delta", "parquet", "csv"])
    batch.add_argument("--model-uri")
    batch.add_argument("--predictions-table")
    batch.add_argument("--master")
    batch.add_argument("--conf", action="append")

    status = commands.add_parser("status", help="lag per partition, last batch, model version")
    status.add_argument("--bootstrap-servers")
    status.add_argument("--checkpoint")
    status.add_argument("--query-name")
    status.add_argument("--predictions-table")

    produce = commands.add_parser("produce", help="send synthetic listing events to a topic")
    produce.add_argument("--bootstrap-servers")
    produce.add_argument("--topic")
    produce.add_argument("--count", type=int, default=1000)
    produce.add_argument("--malformed-every", type=int, default=0, help="every Nth event is bad")
    produce.add_argument("--seed", type=int, default=7)
    return parser


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("py4j", "kafka", "urllib3", "alembic", "mlflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 2 configuration error, 1 query failure)."""
    args = _parser().parse_args(argv)
    environment = dict(os.environ if env is None else env)
    _configure_logging(args.log_level)
    from streaming import commands

    try:
        if args.command == "run":
            return commands.run(build_service_settings(args, environment), environment)
        if args.command == "batch":
            return commands.batch(args, environment)
        if args.command == "status":
            return commands.status(args, environment)
        return commands.produce(args, environment)
    except StreamingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
