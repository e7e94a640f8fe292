"""Command line: ``python -m streaming COMMAND`` (run, realtime, land, batch, status, tail,
report, compact, vacuum, produce, verify).

The edge of the program and the only place that reads the environment. Every option is a flag,
an environment variable ``STREAMING_<OPTION>`` (``STREAMING_MODEL_URI``) or a key of the TOML
file named by ``--config`` (``model-uri = "..."``); flags win over the environment, which wins
over the file. Kafka client options are ``--kafka-option kafka.KEY=VALUE``, variables
``STREAMING_KAFKA_<KEY>`` (``STREAMING_KAFKA_SASL_JAAS_CONFIG`` is ``kafka.sasl.jaas.config``)
or a ``[kafka-options]`` table in the file; those holding credentials are kept secret.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from infra.errors import ProjectError
from infra.logs import configure_logging
from infra.settings import (
    add_options,
    key_value_pairs,
    read_config_file,
    settings_from_arguments,
)
from streaming import commands
from streaming.settings import (
    BatchSettings,
    CompactSettings,
    KafkaClientSettings,
    LandSettings,
    ProduceSettings,
    RealTimeSettings,
    ReportSettings,
    ServiceSettings,
    StatusSettings,
    StreamingCommand,
    TailSettings,
    VacuumSettings,
    VerifySettings,
)

__all__ = ["COMMANDS", "build_parser", "kafka_options_from", "main"]

ENV_PREFIX = "STREAMING_"
CONFIG_VARIABLE = "STREAMING_CONFIG"
_KAFKA_ENV_PREFIX = "STREAMING_KAFKA_"

# name -> (settings class, what it does, the function that does it)
COMMANDS: Mapping[str, tuple[type[StreamingCommand], str, Callable[[Any], int]]] = {
    "run": (ServiceSettings, "run the streaming inference query", commands.run),
    "realtime": (
        RealTimeSettings,
        "score the events topic into a predictions topic in Spark's Real-Time Mode "
        "(milliseconds, at-least-once; MLlib models only)",
        commands.realtime,
    ),
    "land": (
        LandSettings,
        "land the real-time query's predictions and dead-letter topics into the Delta tables, "
        "every source offset once",
        commands.land,
    ),
    "batch": (BatchSettings, "score a Delta/Parquet/CSV table into a Delta table", commands.batch),
    "status": (
        StatusSettings,
        "lag per partition, last batch, model version; a health check (exit 1)",
        commands.status,
    ),
    "compact": (
        CompactSettings,
        "compact a table's small files (Delta OPTIMIZE); safe while the query writes",
        commands.compact,
    ),
    "vacuum": (
        VacuumSettings,
        "delete files a table no longer references, after a retention of 7 days or more",
        commands.vacuum,
    ),
    "tail": (
        TailSettings,
        "the newest rows of the predictions or quarantine table, without Spark",
        commands.tail,
    ),
    "report": (
        ReportSettings,
        "throughput, latency, quarantine and model versions over a time window, as a PNG",
        commands.report,
    ),
    "produce": (
        ProduceSettings,
        "send events to a topic: a file replayed (JSON lines, CSV, Parquet, Delta) or "
        "synthetic, at a rate, optionally with malformed ones",
        commands.produce,
    ),
    "verify": (
        VerifySettings,
        "check every offset of a topic landed once and predictions reproduce",
        commands.verify,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; its flags are generated from the settings classes."""
    parser = argparse.ArgumentParser(
        prog="python -m streaming", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--config", help="TOML file with option values [env STREAMING_CONFIG]")
    # The options every command has may also stand before the command.
    add_options(parser, StreamingCommand)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (settings_class, help_text, _) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        # Also accepted after the command; SUPPRESS keeps a top-level --config from being reset.
        sub.add_argument("--config", default=argparse.SUPPRESS, help="TOML file with options")
        add_options(sub, settings_class)
    return parser


def kafka_options_from(
    file_values: Mapping[str, Any], env: Mapping[str, str], flags: Sequence[str]
) -> dict[str, str]:
    """Kafka client options from the file's table, then ``STREAMING_KAFKA_*``, then the flags."""
    options = {str(k): str(v) for k, v in dict(file_values.get("kafka_options") or {}).items()}
    for name, value in env.items():
        if name.upper().startswith(_KAFKA_ENV_PREFIX):
            key = "kafka." + name[len(_KAFKA_ENV_PREFIX) :].lower().replace("_", ".")
            options[key] = value
    options.update(key_value_pairs(flags, "--kafka-option"))
    return options


def build_settings(args: argparse.Namespace, env: Mapping[str, str]) -> StreamingCommand:
    """The chosen command's settings from the parsed flags, the environment and the file.

    Raises:
        ProjectError: a required option is missing or a value is invalid (one line).
    """
    settings_class = COMMANDS[args.command][0]
    extra = {}
    if issubclass(settings_class, KafkaClientSettings):
        file_values = read_config_file(getattr(args, "config", None) or env.get(CONFIG_VARIABLE))
        flags = getattr(args, "kafka_options", None) or []
        extra["kafka_options"] = kafka_options_from(file_values, env, flags)
    return settings_from_arguments(settings_class, args, env, CONFIG_VARIABLE, extra)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 2 configuration error, 1 query failure)."""
    args = build_parser().parse_args(argv)
    environment = dict(os.environ if env is None else env)
    try:
        settings = build_settings(args, environment)
        configure_logging(settings.log_level, settings.log_format)
        return COMMANDS[args.command][2](settings)
    except ProjectError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def entry() -> NoReturn:
    """``python -m streaming`` and the ``streaming`` script: run ``main``, then exit at once.

    delta-rs (``status``, ``tail``, ``vacuum``, ``report``) leaves runtime threads that can abort
    the interpreter while it shuts down, after the command has finished (exit code 134 instead
    of the command's; delta-io/delta-rs#2184). The command's output is flushed first.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
