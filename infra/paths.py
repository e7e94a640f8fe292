"""Where the project keeps its state: checkpoints, the embedded MLflow store, caches.

Everything resolves from one home folder: ``STREAMING_HOME`` when set, else the working
directory. Nothing resolves from where the code is installed, so a wheel installed into
``site-packages`` keeps its state where the user runs it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["HOME_VARIABLE", "ProjectHome"]

HOME_VARIABLE = "STREAMING_HOME"


@dataclass(frozen=True)
class ProjectHome:
    """The folder the project's default locations hang off.

    Attributes:
        root: The home folder (absolute).
    """

    root: Path

    @classmethod
    def resolve(cls, home: str | Path | None = None) -> ProjectHome:
        """The given folder, or the working directory when ``home`` is empty."""
        return cls(Path(home or os.getcwd()).expanduser().resolve())

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> ProjectHome:
        """``STREAMING_HOME`` from ``env``, else the working directory."""
        return cls.resolve(env.get(HOME_VARIABLE))

    @property
    def checkpoints(self) -> Path:
        """Default parent of streaming checkpoints: ``checkpoints/<query name>``."""
        return self.root / "checkpoints"

    @property
    def local(self) -> Path:
        """Project-local state that is not versioned (MLflow store, demo tables)."""
        return self.root / ".local"

    @property
    def mlflow_store(self) -> Path:
        """The embedded MLflow store: ``mlflow.db`` and ``artifacts/``."""
        return self.local / "mlflow"

    @property
    def spark_jars(self) -> Path:
        """Cache of the resolved Spark JVM packages."""
        return self.root / ".cache" / "spark-jars"
