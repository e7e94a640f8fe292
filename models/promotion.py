"""Promote the challenger to champion when it beats the champion on the same pinned holdout."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

import mlflow
import mlflow.pyfunc
import mlflow.spark
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from infra.tracking import TrackingStore
from models.aliases import (
    CHALLENGER,
    CHAMPION,
    DEFAULT_MODEL_NAME,
    alias_version,
)
from models.errors import RegistryError, RunNotFoundError, SettingsError
from models.experiments import (
    COMMAND_TAG,
    DEFAULT_EXPERIMENT_NAME,
    open_experiment,
    registry_client,
)
from models.listings import DataSource
from models.pipeline import PREDICTION_COLUMN
from models.training import TrainingSpec, evaluate, prepare_data

__all__ = [
    "PromoteSettings",
    "PromotionDecision",
    "decide_promotion",
    "promote",
    "score_model_version",
    "split_caveat",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromoteSettings:
    """Settings of ``python -m models promote``.

    Attributes:
        model_name: Registered model whose aliases are compared.
        min_improvement: Relative RMSE improvement the challenger needs (0.05 = 5% lower);
            0 means any strictly lower RMSE.
        data_path: Holdout data; default: the data the challenger's run recorded.
        data_version: Delta version to read; default: the challenger run's version when the
            path is the recorded one, else the latest.
        experiment_name: MLflow experiment the decision run is logged to.
        experiment_id: Existing experiment to use instead (``mlflow run`` passes one).
    """

    model_name: str = DEFAULT_MODEL_NAME
    min_improvement: float = 0.0
    data_path: str | None = None
    data_version: int | None = None
    experiment_name: str = DEFAULT_EXPERIMENT_NAME
    experiment_id: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.min_improvement < 1:
            raise SettingsError(
                f"--min-improvement must be a fraction in [0, 1), got {self.min_improvement}"
            )


@dataclass(frozen=True)
class PromotionDecision:
    """The outcome of ``promote``.

    Attributes:
        promoted: Whether ``champion`` moved to the challenger.
        reason: One sentence saying why.
        challenger_version: The version ``challenger`` points at.
        champion_version: The version ``champion`` pointed at before (``None`` if none).
        challenger_metrics: Holdout metrics of the challenger (empty when not scored).
        champion_metrics: Holdout metrics of the champion (empty when not scored).
        run_id: The MLflow run recording the decision.
        caveat: Why the comparison may flatter the champion (it was trained with another
            split, so some holdout rows may have been in its training data), or ``None``.
    """

    promoted: bool
    reason: str
    challenger_version: str
    champion_version: str | None
    challenger_metrics: Mapping[str, float]
    champion_metrics: Mapping[str, float]
    run_id: str
    caveat: str | None = None


def decide_promotion(
    challenger_rmse: float, champion_rmse: float, min_improvement: float
) -> tuple[bool, str]:
    """Decide whether a challenger replaces the champion (lower RMSE is better).

    The challenger must be strictly better, and by at least ``min_improvement`` relative to
    the champion's RMSE.

    Returns:
        ``(promote, reason)``.
    """
    improvement = (champion_rmse - challenger_rmse) / champion_rmse if champion_rmse else 0.0
    numbers = (
        f"challenger RMSE {challenger_rmse:.4f} vs champion {champion_rmse:.4f} "
        f"({improvement:+.2%}, needed > 0 and >= {min_improvement:.2%})"
    )
    if challenger_rmse < champion_rmse and improvement >= min_improvement:
        return True, f"challenger is better: {numbers}"
    return False, f"champion stays: {numbers}"


def score_model_version(
    spark: SparkSession,
    client: MlflowClient,
    name: str,
    version: str,
    holdout: DataFrame,
    feature_columns: tuple[str, ...],
    label_column: str,
) -> dict[str, float]:
    """Score a registered version on a holdout: MLlib models natively, others through
    ``mlflow.pyfunc.spark_udf``.

    Returns:
        Holdout RMSE, MAE and R².
    """
    uri = f"models:/{name}/{version}"
    flavors = mlflow.models.get_model_info(uri).flavors
    if "spark" in flavors:
        predictions = mlflow.spark.load_model(uri).transform(holdout)
    else:
        predict = mlflow.pyfunc.spark_udf(spark, uri, result_type="double", env_manager="local")
        predictions = holdout.withColumn(
            PREDICTION_COLUMN, predict(F.struct(*[F.col(c) for c in feature_columns]))
        )
    return evaluate(predictions, label_column)


def _holdout_spec(client: MlflowClient, run_id: str, settings: PromoteSettings) -> TrainingSpec:
    try:
        params = client.get_run(run_id).data.params
        spec = TrainingSpec.from_params(params, data_only=True)
    except (MlflowException, KeyError, ValueError) as e:
        raise RunNotFoundError(
            f"the challenger's run {run_id} holds no usable data record ({e}): "
            "give --data-path (and --data-version) to score on"
        ) from e
    if settings.data_path is None or settings.data_path == spec.source.path:
        # The recorded table: stay on the recorded version unless told otherwise.
        if settings.data_version is None:
            return spec
        return replace(spec, source=replace(spec.source, version=settings.data_version))
    return replace(spec, source=DataSource(settings.data_path, version=settings.data_version))


def split_caveat(champion_params: Mapping[str, str], spec: TrainingSpec) -> str | None:
    """Say when the champion was not trained with the holdout split used to judge it.

    Returns:
        A sentence, or ``None`` when the champion's run recorded the same split.
    """
    recorded = (champion_params.get("split_seed"), champion_params.get("holdout_fraction"))
    if recorded == (str(spec.split_seed), str(spec.holdout_fraction)):
        return None
    return (
        f"the champion was trained with split_seed={recorded[0]}, "
        f"holdout_fraction={recorded[1]} (this holdout: {spec.split_seed}, "
        f"{spec.holdout_fraction}): some holdout rows may be in its training data"
    )


def promote(
    spark: SparkSession, store: TrackingStore, settings: PromoteSettings
) -> PromotionDecision:
    """Compare ``challenger`` and ``champion`` on the same holdout; move ``champion`` if better.

    The holdout is the challenger run's: same data path and Delta version, same split seed
    and fraction, rows chosen by a hash of their id. The decision, both versions and both
    metrics are logged to a ``promote`` run.

    Returns:
        The decision.

    Raises:
        RegistryError: the model or its ``challenger`` alias does not exist.
        RunNotFoundError: the challenger's run has no data record and no data path was given.
        DataError: the holdout data cannot be read.
    """
    experiment_id = open_experiment(store, settings.experiment_name, settings.experiment_id)
    client = registry_client(store)
    name = settings.model_name
    challenger = alias_version(client, name, CHALLENGER)
    if challenger is None:
        raise RegistryError(
            f"registered model {name!r} has no {CHALLENGER!r} version in {store.tracking_uri}: "
            "train one first (python -m models train) or check --model-name"
        )
    champion = alias_version(client, name, CHAMPION)
    challenger_metrics: dict[str, float] = {}
    champion_metrics: dict[str, float] = {}
    spec: TrainingSpec | None = None
    holdout_rows = 0
    caveat: str | None = None
    if champion is None:
        promoted, reason = True, "there is no champion yet"
    elif champion.version == challenger.version:
        promoted, reason = False, f"challenger is already champion (version {champion.version})"
    else:
        spec = _holdout_spec(client, str(challenger.run_id), settings)
        prepared = prepare_data(spark, spec)
        columns = (spec.feature_columns, spec.label_column)
        try:
            holdout_rows = prepared.holdout.count()
            holdout = prepared.holdout
            challenger_metrics = score_model_version(
                spark, client, name, str(challenger.version), holdout, *columns
            )
            champion_metrics = score_model_version(
                spark, client, name, str(champion.version), holdout, *columns
            )
        finally:
            prepared.release()
        spec = replace(spec, source=replace(spec.source, version=prepared.data.version))
        promoted, reason = decide_promotion(
            challenger_metrics["rmse"], champion_metrics["rmse"], settings.min_improvement
        )
        caveat = split_caveat(client.get_run(str(champion.run_id)).data.params, spec)

    with mlflow.start_run(experiment_id=experiment_id, run_name="promote") as run:
        mlflow.set_tags(
            {
                COMMAND_TAG: "promote",
                "promotion.decision": "promoted" if promoted else "kept",
                "promotion.reason": reason,
                **({"promotion.caveat": caveat} if caveat else {}),
            }
        )
        mlflow.log_params(
            {
                "model_name": name,
                "challenger_version": challenger.version,
                "champion_version": "none" if champion is None else champion.version,
                "min_improvement": settings.min_improvement,
                **(
                    {
                        "data_path": spec.source.path,
                        "data_version": str(spec.source.version),
                        "split_seed": spec.split_seed,
                        "holdout_fraction": spec.holdout_fraction,
                        "holdout_rows": holdout_rows,
                    }
                    if spec is not None
                    else {}
                ),
            }
        )
        mlflow.log_metrics(
            {
                **{f"challenger_{k}": v for k, v in challenger_metrics.items()},
                **{f"champion_{k}": v for k, v in champion_metrics.items()},
            }
        )
        if promoted:
            client.set_registered_model_alias(name, CHAMPION, str(challenger.version))
    _log.info("promote %s: %s", name, reason)
    if caveat:
        _log.warning("promote %s: %s", name, caveat)
    return PromotionDecision(
        promoted=promoted,
        reason=reason,
        challenger_version=str(challenger.version),
        champion_version=None if champion is None else str(champion.version),
        challenger_metrics=challenger_metrics,
        champion_metrics=champion_metrics,
        run_id=run.info.run_id,
        caveat=caveat,
    )
