"""The project as a user installs it: a wheel in a fresh virtualenv, run from another folder.

Its defaults (the jar cache, the MLflow store, checkpoints) must land under the working
directory or ``STREAMING_HOME``, never next to ``site-packages``, and nothing may come from the
checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession

from infra.tracking import TrackingStore
from tests.conftest import PROJECT_ROOT
from tests.streaming.conftest import Registry, training_frame

# Slow (a broker, or a wheel built and installed): not part of the fast layer.
pytestmark = pytest.mark.integration

UV = PROJECT_ROOT / ".local" / "bootstrap" / "bin" / "uv"


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload,no-any-return]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The wheel built from this checkout, installed with the locked dependencies."""
    root = tmp_path_factory.mktemp("wheel")
    built = _run([str(UV), "build", "--wheel", "-o", str(root / "dist")], cwd=PROJECT_ROOT)
    assert built.returncode == 0, built.stderr
    (wheel,) = (root / "dist").glob("*.whl")
    requirements = root / "requirements.txt"
    exported = _run(
        [str(UV), "export", "--locked", "--no-dev", "--no-hashes", "--no-emit-project",
         "--format", "requirements-txt", "-o", str(requirements)],
        cwd=PROJECT_ROOT,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    venv = root / "venv"
    assert _run([str(UV), "venv", "-q", "--python", sys.executable, str(venv)]).returncode == 0
    install = _run(
        [str(UV), "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
         "-r", str(requirements), str(wheel)],
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    yield wheel


def _user_env(venv_python: Path, tracking_uri: str | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STREAMING_", "MODELS_", "PYTHON", "PYSPARK", "VIRTUAL_ENV"))
    }
    env["PYSPARK_PYTHON"] = str(venv_python)
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    return env


def test_the_wheel_ships_the_service_and_not_the_demo(installed: Path) -> None:
    names = zipfile.ZipFile(installed).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"infra", "streaming", "models"}
    assert "infra/spark-packages/pom.xml" in names


@pytest.mark.parametrize("package", ["streaming", "models"])
def test_help_runs_from_another_folder(installed: Path, tmp_path: Path, package: str) -> None:
    python = installed.parent.parent / "venv" / "bin" / "python"
    result = _run([str(python), "-m", package, "--help"], cwd=tmp_path, env=_user_env(python))
    assert result.returncode == 0, result.stderr
    assert f"python -m {package}" in result.stdout
    located = _run(
        [str(python), "-c", f"import {package}; print({package}.__file__)"],
        cwd=tmp_path, env=_user_env(python),
    )  # fmt: skip
    assert "site-packages" in located.stdout and str(PROJECT_ROOT) not in located.stdout


def test_batch_scoring_from_the_wheel_keeps_its_state_in_the_working_directory(
    installed: Path,
    spark: SparkSession,
    registry: Registry,
    base_model: PipelineModel,
    tracking_store: TrackingStore,
    tmp_path: Path,
) -> None:
    python = installed.parent.parent / "venv" / "bin" / "python"
    registry.register_spark(base_model, training_frame(spark))
    training_frame(spark).write.parquet(str(tmp_path / "input"))
    work = tmp_path / "work"
    work.mkdir()

    result = _run(
        [str(python), "-m", "streaming", "batch", "--input", str(tmp_path / "input"),
         "--model-uri", f"models:/{registry.name}@champion",
         "--predictions-table", "predictions", "--master", "local[1]"],
        cwd=work, env=_user_env(python, tracking_store.tracking_uri), timeout=600,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    rows = training_frame(spark).count()
    assert f"{rows} predictions written" in result.stdout
    assert spark.read.format("delta").load(str(work / "predictions")).count() == rows
    assert list((work / ".cache" / "spark-jars").glob("*/*.jar"))  # resolved into the home
