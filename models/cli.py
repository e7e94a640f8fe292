"""``python -m models train|tune|promote|reproduce|generate-data``.

The edge of the program and the only place that reads the environment. Every option is a flag,
an environment variable ``MODELS_<OPTION>`` (``MODELS_DATA_PATH``) or a key of the TOML file
named by ``--config`` (``data-path = "..."``); flags win over the environment, which wins over
the file. MLflow's own variables are read too: ``MLFLOW_TRACKING_URI``, and
``MLFLOW_EXPERIMENT_NAME`` / ``MLFLOW_EXPERIMENT_ID`` (set by ``mlflow run``) unless
``MODELS_EXPERIMENT`` / ``MODELS_EXPERIMENT_ID`` are set.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mlflow.exceptions import MlflowException
from pyspark.sql import SparkSession

from infra.errors import ProjectError, first_line
from infra.logs import configure_logging
from infra.settings import add_options, settings_from_arguments
from infra.spark import build_spark_session, stop_spark
from models.listings import DataSource, check_data_path
from models.pipeline import RegressorParams
from models.settings import (
    GenerateDataCommand,
    ModelsCommand,
    PromoteCommand,
    ReproduceCommand,
    TrainCommand,
    TrainingCommand,
    TuneCommand,
)
from models.training import TrainingSpec

__all__ = ["COMMANDS", "ENV_PREFIX", "build_parser", "build_settings", "main"]

ENV_PREFIX = "MODELS_"
CONFIG_VARIABLE = "MODELS_CONFIG"
# MLflow's variables (``mlflow run`` sets the experiment's) and the option each one feeds.
_MLFLOW_VARIABLES: Mapping[str, str] = {
    "MLFLOW_EXPERIMENT_NAME": "MODELS_EXPERIMENT",
    "MLFLOW_EXPERIMENT_ID": "MODELS_EXPERIMENT_ID",
}


def _spark(settings: ModelsCommand, command: str) -> SparkSession:
    # A session already running in this process (notebook, tests) is used as it is.
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    return build_spark_session(
        f"models-{command}", settings.project_home.spark_jars, settings.master
    )


def _spec(settings: TrainingCommand, regressor: RegressorParams) -> TrainingSpec:
    check_data_path(settings.data_path)
    return TrainingSpec(
        source=DataSource(settings.data_path, settings.data_format, settings.data_version),
        regressor=regressor,
        seed=settings.seed,
        holdout_fraction=settings.holdout_fraction,
        split_seed=settings.split_seed,
        partitions=settings.partitions,
    )


def _train(settings: TrainCommand) -> int:
    from models.training import TrainSettings, train

    regressor = RegressorParams(
        kind=settings.regressor,
        num_trees=settings.num_trees,
        max_depth=settings.max_depth,
        max_bins=settings.max_bins,
        min_instances_per_node=settings.min_instances_per_node,
    )
    train_settings = TrainSettings(
        spec=_spec(settings, regressor),
        model_name=settings.model_name,
        experiment_name=settings.experiment,
        experiment_id=settings.experiment_id,
    )
    result = train(_spark(settings, "train"), settings.tracking_store, train_settings)
    print(f"run {result.run_id}")
    print("metrics " + " ".join(f"{k}={v:.4f}" for k, v in result.metrics.items()))
    print(f"data version {result.data_version}")
    if result.model_version is not None:
        aliases = ",".join(result.aliases)
        print(f"registered {settings.model_name} version {result.model_version} aliases {aliases}")
    return 0


def _tune(settings: TuneCommand) -> int:
    from models.tuning import TuneSettings, tune

    regressor = RegressorParams(
        kind=settings.regressor,
        max_bins=settings.max_bins,
        min_instances_per_node=settings.min_instances_per_node,
    )
    tune_settings = TuneSettings(
        spec=_spec(settings, regressor),
        num_trees_grid=settings.num_trees_grid,
        max_depth_grid=settings.max_depth_grid,
        folds=settings.folds,
        parallelism=settings.parallelism,
        model_name=settings.model_name,
        sklearn_model_name=settings.sklearn_model_name,
        experiment_name=settings.experiment,
        experiment_id=settings.experiment_id,
    )
    result = tune(_spark(settings, "tune"), settings.tracking_store, tune_settings)
    print(f"run {result.run_id}")
    for backend in (result.spark, result.sklearn):
        print(
            f"{backend.model_name} version {backend.model_version} ({','.join(backend.aliases)}): "
            f"best {dict(backend.best_params)} rmse={backend.metrics['rmse']:.4f} "
            f"run {backend.run_id}, {len(backend.trial_run_ids)} trials"
        )
    return 0


def _promote(settings: PromoteCommand) -> int:
    from models.promotion import PromoteSettings, promote

    if settings.data_path is not None:
        check_data_path(settings.data_path)
    promote_settings = PromoteSettings(
        model_name=settings.model_name,
        min_improvement=settings.min_improvement,
        data_path=settings.data_path,
        data_version=settings.data_version,
        experiment_name=settings.experiment,
        experiment_id=settings.experiment_id,
    )
    decision = promote(_spark(settings, "promote"), settings.tracking_store, promote_settings)
    print(("promoted" if decision.promoted else "kept") + f": {decision.reason}")
    if decision.caveat:
        print(f"caveat: {decision.caveat}")
    print(f"run {decision.run_id}")
    return 0


def _reproduce(settings: ReproduceCommand) -> int:
    from models.experiments import registry_client
    from models.reproduction import ReproduceSettings, fetch_run, reproduce, training_spec_of

    store = settings.tracking_store
    # Checked before Spark starts, so that a wrong id fails in a second.
    training_spec_of(fetch_run(registry_client(store), settings.run_id, store.tracking_uri))
    reproduce_settings = ReproduceSettings(
        run_id=settings.run_id,
        tolerance=settings.tolerance,
        experiment_name=settings.experiment,
        experiment_id=settings.experiment_id,
    )
    report = reproduce(_spark(settings, "reproduce"), store, reproduce_settings)
    print("\n".join(report.lines()))
    return 0 if report.matched else 1


def _generate(settings: GenerateDataCommand) -> int:
    from models.listings import generate_listings, next_listing_id, write_listings

    spark = _spark(settings, "generate-data")
    start_id = settings.start_id
    if start_id is None:
        start_id = next_listing_id(spark, settings.data_path) if settings.mode == "append" else 1
    version = write_listings(
        spark,
        generate_listings(settings.rows, settings.seed, start_id),
        settings.data_path,
        settings.mode,
    )
    print(f"wrote {settings.rows} listings to {settings.data_path} (Delta version {version})")
    return 0


# name -> (settings class, what it does, the function that does it, base options it hides)
COMMANDS: Mapping[str, tuple[type[ModelsCommand], str, Callable[[Any], int], tuple[str, ...]]] = {
    "train": (TrainCommand, "train, log and register the MLlib model", _train, ()),
    "tune": (
        TuneCommand,
        "grid-search with Spark ML CrossValidator and scikit-learn on joblibspark",
        _tune,
        (),
    ),
    "promote": (
        PromoteCommand,
        "move champion to the challenger if it is better on the pinned holdout",
        _promote,
        (),
    ),
    "reproduce": (
        ReproduceCommand,
        "retrain a run from its record and compare metrics",
        _reproduce,
        (),
    ),
    "generate-data": (
        GenerateDataCommand,
        "write synthetic San Francisco listings to a Delta table",
        _generate,
        # It touches no MLflow store: these options mean nothing to it.
        ("tracking_uri", "experiment", "experiment_id", "model_name"),
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; its flags are generated from the settings classes."""
    parser = argparse.ArgumentParser(
        prog="python -m models", description="Model lifecycle: train, tune, promote, reproduce."
    )
    parser.add_argument("--config", help=f"TOML file with option values [env {CONFIG_VARIABLE}]")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (settings_class, help_text, _, hidden) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        # Also accepted after the command; SUPPRESS keeps a top-level --config from being reset.
        sub.add_argument("--config", default=argparse.SUPPRESS, help="TOML file with options")
        add_options(sub, settings_class, skip=hidden)
    return parser


def _with_mlflow_variables(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` plus ``MODELS_EXPERIMENT[_ID]`` from MLflow's variables when those are unset."""
    environment = dict(env)
    given = {k.upper() for k, v in env.items() if v}
    for mlflow_name, own in _MLFLOW_VARIABLES.items():
        if env.get(mlflow_name) and own not in given:
            environment[own] = env[mlflow_name]
    return environment


def build_settings(args: argparse.Namespace, env: Mapping[str, str]) -> ModelsCommand:
    """The chosen command's settings from the parsed flags, the environment and the file.

    Raises:
        SettingsError: a required option is missing or a value is invalid (one line).
    """
    settings_class = COMMANDS[args.command][0]
    return settings_from_arguments(
        settings_class, args, _with_mlflow_variables(env), CONFIG_VARIABLE
    )


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run one command.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).
        env: The environment (default: ``os.environ``, read here and nowhere else).

    Returns:
        0 on success; 1 when ``reproduce`` finds different metrics; 2 on a user error, after
        printing one ``error: ...`` line to stderr.
    """
    args = build_parser().parse_args(argv)
    environment = dict(os.environ if env is None else env)
    session_before = SparkSession.getActiveSession()
    try:
        settings = build_settings(args, environment)
        configure_logging(settings.log_level)
        return COMMANDS[args.command][2](settings)
    except (ProjectError, MlflowException) as e:
        print(f"error: {first_line(e)}", file=sys.stderr)
        return 2
    finally:
        session = SparkSession.getActiveSession()
        if session is not None and session_before is None:
            stop_spark(session)
