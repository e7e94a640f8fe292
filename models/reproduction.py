"""Retrain a recorded run from its record and say whether, and why not, the metrics match."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

import mlflow
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pyspark.sql import SparkSession

from infra.tracking import TrackingStore
from models import lineage
from models.errors import RunNotFoundError
from models.experiments import (
    COMMAND_TAG,
    DEFAULT_EXPERIMENT_NAME,
    open_experiment,
    registry_client,
)
from models.training import METRIC_NAMES, TrainingSpec, evaluate, fit_pipeline, prepare_data

__all__ = [
    "MetricComparison",
    "ReproduceSettings",
    "ReproductionReport",
    "data_differences",
    "fetch_run",
    "reproduce",
    "training_spec_of",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReproduceSettings:
    """Settings of ``python -m models reproduce``.

    Attributes:
        run_id: The run to retrain (made by ``train``, or the ``spark-ml`` child of ``tune``).
        tolerance: Relative difference under which metrics count as equal (0: identical).
        log_run: Log a ``reproduce`` run holding the outcome.
        experiment_name: MLflow experiment of that run.
        experiment_id: Existing experiment to use instead (``mlflow run`` passes one).
    """

    run_id: str
    tolerance: float = 0.0
    log_run: bool = True
    experiment_name: str = DEFAULT_EXPERIMENT_NAME
    experiment_id: str | None = None


@dataclass(frozen=True)
class MetricComparison:
    """One metric as recorded and as reproduced."""

    name: str
    recorded: float | None
    reproduced: float

    def matches(self, tolerance: float) -> bool:
        """Whether the values are equal within ``tolerance`` (relative)."""
        if self.recorded is None:
            return False
        return math.isclose(self.recorded, self.reproduced, rel_tol=tolerance, abs_tol=0.0)


@dataclass(frozen=True)
class ReproductionReport:
    """The outcome of ``reproduce``.

    Attributes:
        run_id: The run retrained.
        matched: Whether every metric matched.
        metrics: Each metric, recorded and reproduced.
        differences: What differs between the record and now (data, code, libraries).
        data_path: The data read.
        data_version: The Delta version read (the recorded one).
        reproduction_run_id: The ``reproduce`` run logged (``None`` when not logged).
    """

    run_id: str
    matched: bool
    metrics: tuple[MetricComparison, ...]
    differences: tuple[str, ...]
    data_path: str
    data_version: int | None
    reproduction_run_id: str | None

    def lines(self) -> list[str]:
        """The report as text lines, for a terminal."""
        verdict = "metrics match" if self.matched else "metrics DIFFER"
        version = "" if self.data_version is None else f" version {self.data_version}"
        lines = [f"run {self.run_id}: {verdict} (data {self.data_path}{version})"]
        lines += [
            f"  {m.name}: recorded {m.recorded!r}, reproduced {m.reproduced!r}"
            for m in self.metrics
        ]
        if self.differences:
            lines.append("differences from the recorded run:")
            lines += [f"  - {d}" for d in self.differences]
        elif not self.matched:
            lines.append("no recorded difference explains it (data, code and libraries are equal)")
        return lines


def fetch_run(client: MlflowClient, run_id: str, tracking_uri: str) -> Run:
    """Look a run up.

    Raises:
        RunNotFoundError: the store does not know the run id.
    """
    try:
        return client.get_run(run_id)
    except MlflowException as e:
        raise RunNotFoundError(
            f"run {run_id!r} not found in {tracking_uri}: check the run id (MLflow UI, "
            "`mlflow runs list`) and --tracking-uri / MLFLOW_TRACKING_URI"
        ) from e


def training_spec_of(run: Run) -> TrainingSpec:
    """The spec a run recorded, pinned to the data version it read.

    Raises:
        RunNotFoundError: the run holds no MLlib training record.
    """
    params = run.data.params
    run_id = run.info.run_id
    if params.get("regressor", "").startswith("sklearn"):
        raise RunNotFoundError(
            f"run {run_id} holds a scikit-learn model: reproduce retrains MLlib runs "
            "(made by `train`, or the spark-ml child run of `tune`)"
        )
    try:
        return TrainingSpec.from_params(params)
    except KeyError as e:
        raise RunNotFoundError(
            f"run {run_id} has no training record (param {e.args[0]!r} missing): reproduce "
            "retrains runs made by `train` or the spark-ml child run of `tune`"
        ) from e
    except ValueError as e:
        raise RunNotFoundError(f"run {run_id} has an unreadable training record: {e}") from e


def data_differences(recorded: Mapping[str, str], rows: int, fingerprint: str) -> list[str]:
    """Compare the data read now with the run's record (row count and content hash).

    Returns:
        One sentence per difference; empty when the data is the same.
    """
    where = f"{recorded.get('data_path')} version {recorded.get('data_version')}"
    differences = []
    if recorded.get("data_rows") != str(rows):
        differences.append(f"data {where}: rows {recorded.get('data_rows')} -> {rows}")
    if recorded.get("data_fingerprint") != fingerprint:
        differences.append(
            f"data {where}: content fingerprint {recorded.get('data_fingerprint')} -> {fingerprint}"
        )
    return differences


def reproduce(
    spark: SparkSession, store: TrackingStore, settings: ReproduceSettings
) -> ReproductionReport:
    """Retrain a run from what it recorded and compare its metrics.

    Reads the recorded Delta version (time travel) and only the recorded feature columns, so
    rows and columns added since do not matter; uses the recorded seed, split and
    hyper-parameters. Differences in data content, code version, lock file and library
    versions are reported.

    Returns:
        The report.

    Raises:
        RunNotFoundError: the run does not exist or holds no MLlib training record.
        DataError: the recorded data (version) can no longer be read.
    """
    client = registry_client(store)
    experiment_id = open_experiment(store, settings.experiment_name, settings.experiment_id)
    run = fetch_run(client, settings.run_id, store.tracking_uri)
    spec = training_spec_of(run)
    recorded = run.data.params
    prepared = prepare_data(spark, spec)
    try:
        model, max_bins = fit_pipeline(spec, prepared.train)
        metrics = evaluate(model.transform(prepared.holdout), spec.label_column)
    finally:
        prepared.release()

    differences = data_differences(recorded, prepared.rows, prepared.fingerprint)
    if recorded.get("effective_max_bins", str(max_bins)) != str(max_bins):
        differences.append(f"max bins used: {recorded['effective_max_bins']} -> {max_bins}")
    current = lineage.environment_tags(
        lineage.code_version(),
        lineage.library_versions(),
        lineage.file_sha256(lineage.LOCK_FILE),
    )
    differences += lineage.environment_differences(run.data.tags, current)
    comparisons = tuple(
        MetricComparison(name, run.data.metrics.get(name), metrics[name]) for name in METRIC_NAMES
    )
    matched = all(c.matches(settings.tolerance) for c in comparisons)

    reproduction_run_id = None
    if settings.log_run:
        with mlflow.start_run(experiment_id=experiment_id, run_name="reproduce") as repro:
            mlflow.set_tags(
                {
                    COMMAND_TAG: "reproduce",
                    "reproduction.of_run": settings.run_id,
                    "reproduction.matched": str(matched).lower(),
                    **current,
                }
            )
            mlflow.log_params(
                {"reproduced_run_id": settings.run_id, "tolerance": settings.tolerance}
            )
            mlflow.log_metrics(metrics)
            mlflow.log_text("\n".join(differences) + "\n", "differences.txt")
        reproduction_run_id = repro.info.run_id
    report = ReproductionReport(
        run_id=settings.run_id,
        matched=matched,
        metrics=comparisons,
        differences=tuple(differences),
        data_path=spec.source.path,
        data_version=prepared.data.version,
        reproduction_run_id=reproduction_run_id,
    )
    _log.info(
        "reproduce %s: matched=%s, %d difference(s)", settings.run_id, matched, len(differences)
    )
    return report
