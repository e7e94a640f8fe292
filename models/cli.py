"""``python -m models train|tune|promote|reproduce|generate-data``.

Every option can also be set through an environment variable (named in ``--help``); flags
win. The environment is read here and nowhere else.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from mlflow.exceptions import MlflowException
from pyspark.sql import SparkSession

from infra.errors import ProjectError, first_line
from infra.spark import stop_spark
from infra.tracking import TrackingStore
from models.aliases import DEFAULT_MODEL_NAME
from models.errors import ModelsError
from models.experiments import DEFAULT_EXPERIMENT_NAME
from models.listings import DataSource, check_data_path
from models.pipeline import RegressorParams
from models.training import DEFAULT_SPLIT_SEED, TrainingSpec

__all__ = ["build_parser", "main"]

DEFAULT_GENERATED_ROWS = 5000


def _option(
    parser: argparse.ArgumentParser,
    flag: str,
    env: str,
    help: str,
    *,
    default: Any = None,
    required: bool = False,
    **kwargs: Any,
) -> None:
    from_env = os.environ.get(env)
    shown = f" (default: {default})" if default is not None else ""
    parser.add_argument(
        flag,
        # argparse converts string defaults with `type`, so an env value is parsed like a flag.
        default=from_env if from_env not in (None, "") else default,
        required=required and not from_env,
        help=f"{help}{shown} [env {env}]",
        **kwargs,
    )


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers"
        ) from e
    if not values:
        raise argparse.ArgumentTypeError("the list is empty")
    return values


def _common_options(parser: argparse.ArgumentParser) -> None:
    _option(
        parser,
        "--tracking-uri",
        "MLFLOW_TRACKING_URI",
        "MLflow tracking URI; default: the embedded sqlite store under .local/mlflow",
    )
    _option(
        parser,
        "--experiment",
        "MLFLOW_EXPERIMENT_NAME",
        "MLflow experiment",
        default=DEFAULT_EXPERIMENT_NAME,
    )
    _option(
        parser,
        "--experiment-id",
        "MLFLOW_EXPERIMENT_ID",
        "existing MLflow experiment id (set by `mlflow run`); overrides --experiment",
    )
    _option(
        parser,
        "--model-name",
        "MODELS_MODEL_NAME",
        "registered model name",
        default=DEFAULT_MODEL_NAME,
    )
    _option(
        parser,
        "--master",
        "MODELS_SPARK_MASTER",
        "Spark master (default: local[*]; ignored under spark-submit)",
    )


def _data_options(
    parser: argparse.ArgumentParser,
    required: bool = True,
    what: str = "training data: a Delta table, Parquet or CSV path",
) -> None:
    _option(parser, "--data-path", "MODELS_DATA_PATH", what, required=required)
    _option(
        parser,
        "--data-format",
        "MODELS_DATA_FORMAT",
        "data format",
        default="auto",
        choices=["auto", "delta", "parquet", "csv"],
    )
    _option(
        parser,
        "--data-version",
        "MODELS_DATA_VERSION",
        "Delta version to read (default: latest, then pinned)",
        type=int,
    )


def _training_options(parser: argparse.ArgumentParser, grid: bool) -> None:
    _data_options(parser)
    _option(parser, "--seed", "MODELS_SEED", "seed of the regressor", default=42, type=int)
    _option(
        parser,
        "--split-seed",
        "MODELS_SPLIT_SEED",
        "salt of the holdout split (keep it equal across runs you want to compare)",
        default=DEFAULT_SPLIT_SEED,
        type=int,
    )
    _option(
        parser,
        "--holdout-fraction",
        "MODELS_HOLDOUT_FRACTION",
        "share of rows held out for metrics",
        default=0.2,
        type=float,
    )
    _option(
        parser,
        "--partitions",
        "MODELS_PARTITIONS",
        "partitions the data is laid out in before fitting",
        default=4,
        type=int,
    )
    _option(
        parser,
        "--regressor",
        "MODELS_REGRESSOR",
        "tree regressor",
        default="random-forest",
        choices=["random-forest", "gbt"],
    )
    _option(
        parser,
        "--max-bins",
        "MODELS_MAX_BINS",
        "bins for continuous features",
        default=32,
        type=int,
    )
    _option(
        parser,
        "--min-instances-per-node",
        "MODELS_MIN_INSTANCES_PER_NODE",
        "minimum rows per tree node",
        default=1,
        type=int,
    )
    if not grid:
        _option(
            parser,
            "--num-trees",
            "MODELS_NUM_TREES",
            "trees (or boosting iterations)",
            default=20,
            type=int,
        )
        _option(
            parser, "--max-depth", "MODELS_MAX_DEPTH", "maximum tree depth", default=6, type=int
        )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="python -m models", description="Model lifecycle: train, tune, promote, reproduce."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train, log and register the MLlib model")
    _common_options(train)
    _training_options(train, grid=False)
    train.set_defaults(handler=_train)

    tune = commands.add_parser(
        "tune", help="grid-search with Spark ML CrossValidator and scikit-learn on joblibspark"
    )
    _common_options(tune)
    _training_options(tune, grid=True)
    _option(
        tune,
        "--num-trees-grid",
        "MODELS_NUM_TREES_GRID",
        "trees to try, comma-separated",
        default="10,30",
        type=_int_list,
    )
    _option(
        tune,
        "--max-depth-grid",
        "MODELS_MAX_DEPTH_GRID",
        "depths to try, comma-separated",
        default="4,8",
        type=_int_list,
    )
    _option(tune, "--folds", "MODELS_FOLDS", "cross-validation folds", default=3, type=int)
    _option(
        tune, "--parallelism", "MODELS_PARALLELISM", "trials fitted at once", default=2, type=int
    )
    _option(
        tune,
        "--sklearn-model-name",
        "MODELS_SKLEARN_MODEL_NAME",
        "registered name of the scikit-learn model (default: <model-name>-sklearn)",
    )
    tune.set_defaults(handler=_tune)

    promote = commands.add_parser(
        "promote", help="move champion to the challenger if it is better on the pinned holdout"
    )
    _common_options(promote)
    _data_options(
        promote,
        required=False,
        what="holdout data (default: the data and Delta version the challenger's run read)",
    )
    _option(
        promote,
        "--min-improvement",
        "MODELS_MIN_IMPROVEMENT",
        "relative RMSE improvement needed, e.g. 0.02",
        default=0.0,
        type=float,
    )
    promote.set_defaults(handler=_promote)

    reproduce = commands.add_parser(
        "reproduce", help="retrain a run from its record and compare metrics"
    )
    _common_options(reproduce)
    reproduce.add_argument(
        "run_id",
        nargs="?",
        default=os.environ.get("MODELS_RUN_ID"),
        metavar="RUN_ID",
        help="the run to retrain [env MODELS_RUN_ID]",
    )
    _option(
        reproduce,
        "--tolerance",
        "MODELS_TOLERANCE",
        "relative metric difference accepted",
        default=0.0,
        type=float,
    )
    reproduce.set_defaults(handler=_reproduce)

    generate = commands.add_parser(
        "generate-data", help="write synthetic San Francisco listings to a Delta table"
    )
    _option(generate, "--data-path", "MODELS_DATA_PATH", "Delta table to write", required=True)
    _option(
        generate,
        "--rows",
        "MODELS_ROWS",
        "rows to generate",
        default=DEFAULT_GENERATED_ROWS,
        type=int,
    )
    _option(generate, "--seed", "MODELS_SEED", "generator seed", default=42, type=int)
    _option(
        generate,
        "--mode",
        "MODELS_WRITE_MODE",
        "overwrite or append",
        default="overwrite",
        choices=["overwrite", "append"],
    )
    _option(
        generate,
        "--start-id",
        "MODELS_START_ID",
        "first id (default: 1, or after the table's last id when appending)",
        type=int,
    )
    _option(generate, "--master", "MODELS_SPARK_MASTER", "Spark master (default: local[*])")
    generate.set_defaults(handler=_generate)
    return parser


def _store(args: argparse.Namespace) -> TrackingStore:
    return TrackingStore(args.tracking_uri)


def _spec(args: argparse.Namespace, grid: bool) -> TrainingSpec:
    check_data_path(args.data_path)
    return TrainingSpec(
        source=DataSource(args.data_path, args.data_format, args.data_version),
        regressor=RegressorParams(
            kind=args.regressor,
            max_bins=args.max_bins,
            min_instances_per_node=args.min_instances_per_node,
            **({} if grid else {"num_trees": args.num_trees, "max_depth": args.max_depth}),
        ),
        seed=args.seed,
        holdout_fraction=args.holdout_fraction,
        split_seed=args.split_seed,
        partitions=args.partitions,
    )


def _spark(args: argparse.Namespace, command: str) -> SparkSession:
    from infra.spark import build_spark_session

    # A session already running in this process (notebook, tests) is used as it is.
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    return build_spark_session(f"models-{command}", master=args.master)


def _train(args: argparse.Namespace) -> int:
    from models.training import TrainSettings, train

    settings = TrainSettings(
        spec=_spec(args, grid=False),
        model_name=args.model_name,
        experiment_name=args.experiment,
        experiment_id=args.experiment_id,
    )
    result = train(_spark(args, "train"), _store(args), settings)
    print(f"run {result.run_id}")
    print("metrics " + " ".join(f"{k}={v:.4f}" for k, v in result.metrics.items()))
    print(f"data version {result.data_version}")
    if result.model_version is not None:
        aliases = ",".join(result.aliases)
        print(f"registered {settings.model_name} version {result.model_version} aliases {aliases}")
    return 0


def _tune(args: argparse.Namespace) -> int:
    from models.tuning import TuneSettings, tune

    settings = TuneSettings(
        spec=_spec(args, grid=True),
        num_trees_grid=args.num_trees_grid,
        max_depth_grid=args.max_depth_grid,
        folds=args.folds,
        parallelism=args.parallelism,
        model_name=args.model_name,
        sklearn_model_name=args.sklearn_model_name,
        experiment_name=args.experiment,
        experiment_id=args.experiment_id,
    )
    result = tune(_spark(args, "tune"), _store(args), settings)
    print(f"run {result.run_id}")
    for backend in (result.spark, result.sklearn):
        print(
            f"{backend.model_name} version {backend.model_version} ({','.join(backend.aliases)}): "
            f"best {dict(backend.best_params)} rmse={backend.metrics['rmse']:.4f} "
            f"run {backend.run_id}, {len(backend.trial_run_ids)} trials"
        )
    return 0


def _promote(args: argparse.Namespace) -> int:
    from models.promotion import PromoteSettings, promote

    if args.data_path is not None:
        check_data_path(args.data_path)
    settings = PromoteSettings(
        model_name=args.model_name,
        min_improvement=args.min_improvement,
        data_path=args.data_path,
        data_version=args.data_version,
        experiment_name=args.experiment,
        experiment_id=args.experiment_id,
    )
    decision = promote(_spark(args, "promote"), _store(args), settings)
    print(("promoted" if decision.promoted else "kept") + f": {decision.reason}")
    if decision.caveat:
        print(f"caveat: {decision.caveat}")
    print(f"run {decision.run_id}")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from models.experiments import registry_client
    from models.reproduction import ReproduceSettings, fetch_run, reproduce, training_spec_of

    if not args.run_id:
        raise ModelsError("give the RUN_ID to reproduce (argument or MODELS_RUN_ID)")
    store = _store(args)
    # Checked before Spark starts, so that a wrong id fails in a second.
    training_spec_of(fetch_run(registry_client(store), args.run_id, store.tracking_uri))
    settings = ReproduceSettings(
        run_id=args.run_id,
        tolerance=args.tolerance,
        experiment_name=args.experiment,
        experiment_id=args.experiment_id,
    )
    report = reproduce(_spark(args, "reproduce"), store, settings)
    print("\n".join(report.lines()))
    return 0 if report.matched else 1


def _generate(args: argparse.Namespace) -> int:
    from models.listings import generate_listings, next_listing_id, write_listings

    spark = _spark(args, "generate-data")
    start_id = args.start_id
    if start_id is None:
        start_id = next_listing_id(spark, args.data_path) if args.mode == "append" else 1
    version = write_listings(
        spark, generate_listings(args.rows, args.seed, start_id), args.data_path, args.mode
    )
    print(f"wrote {args.rows} listings to {args.data_path} (Delta version {version})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command.

    Returns:
        0 on success; 1 when ``reproduce`` finds different metrics; 2 on a user error, after
        printing one ``error: ...`` line to stderr.
    """
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    session_before = SparkSession.getActiveSession()
    try:
        return handler(args)
    except (ProjectError, MlflowException) as e:
        print(f"error: {first_line(e)}", file=sys.stderr)
        return 2
    finally:
        session = SparkSession.getActiveSession()
        if session is not None and session_before is None:
            stop_spark(session)
