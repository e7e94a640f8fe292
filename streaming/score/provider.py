"""Which model scores each batch: the URI's model, following its alias at batch boundaries."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pyspark.sql import SparkSession

from infra.errors import first_line
from streaming.errors import ConfigurationError, ModelLoadError
from streaming.ops.metrics import ServiceMetrics
from streaming.score.identity import ModelIdentity
from streaming.score.model import LoadedModel, load_model

__all__ = ["ModelProvider", "ModelReference"]

log = logging.getLogger(__name__)

_ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)$")
_VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")


@dataclass(frozen=True)
class ModelReference:
    """A model URI taken apart: registry name with an alias or a version, or any other URI."""

    uri: str
    name: str | None = None
    alias: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, uri: str) -> ModelReference:
        if match := _ALIAS_URI.match(uri):
            return cls(uri, name=match["name"], alias=match["alias"])
        if match := _VERSION_URI.match(uri):
            return cls(uri, name=match["name"], version=match["version"])
        return cls(uri)


class ModelProvider:
    """Serves the current model and follows its alias, swapping only between batches.

    Args:
        spark: The session models are loaded into.
        model_uri: ``models:/NAME@ALIAS`` (followed), ``models:/NAME/VERSION`` or any MLflow URI.
        client: The registry client.
        poll_seconds: How often, at most, the alias is looked up (at a batch boundary).
        metrics: Where swaps and failed swaps are counted.
        clock: Monotonic seconds; injectable for tests.
    """

    def __init__(
        self,
        spark: SparkSession,
        model_uri: str,
        client: MlflowClient,
        poll_seconds: float = 30.0,
        metrics: ServiceMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spark = spark
        self.reference = ModelReference.parse(model_uri)
        self.client = client
        self.poll_seconds = poll_seconds
        self.metrics = metrics or ServiceMetrics()
        self.clock = clock
        self._current: LoadedModel | None = None
        self._last_poll = 0.0
        self._rejected: set[str] = set()

    @property
    def current(self) -> LoadedModel:
        if self._current is None:
            raise RuntimeError("ModelProvider.start() was not called")
        return self._current

    def start(self) -> LoadedModel:
        """Load the model the URI names now.

        Raises:
            ConfigurationError: the model is unknown, the registry unreachable, or the model
                unusable; one line saying which.
        """
        try:
            identity = self._resolve()
            self._current = self._load(identity)
        except (MlflowException, ModelLoadError, OSError) as e:
            raise ConfigurationError(
                f"cannot serve {self.reference.uri}: {first_line(e)} "
                f"(registry {mlflow.get_registry_uri()})"
            ) from e
        self._last_poll = self.clock()
        self.metrics.model_version.set(_numeric(self._current.identity.version))
        log.info("serving model %s (%s flavor)", self._current.identity, self._current.flavor)
        return self._current

    def for_batch(self, batch_id: int) -> LoadedModel:
        """The model to score batch ``batch_id`` with, after following the alias if it is time."""
        if self.reference.alias and self.clock() - self._last_poll >= self.poll_seconds:
            self._last_poll = self.clock()
            self._follow_alias(batch_id)
        return self.current

    def version(self, version: str) -> LoadedModel:
        """A specific registered version (to replay a batch with the version it was begun with).

        Raises:
            ModelLoadError: the version cannot be loaded.
        """
        if self._current is not None and self._current.identity.version == version:
            return self._current
        if self.reference.name is None:
            raise ModelLoadError(f"{self.reference.uri} is not a registry URI; cannot pin version")
        mv = self.client.get_model_version(self.reference.name, version)
        identity = ModelIdentity(
            uri=f"models:/{self.reference.name}/{version}",
            name=self.reference.name,
            version=str(mv.version),
            run_id=mv.run_id,
        )
        return load_model(self.spark, identity.uri, identity)

    def _follow_alias(self, batch_id: int) -> None:
        try:
            identity = self._resolve()
        except Exception as e:
            self.metrics.model_swap_failures.labels(reason="registry_unreachable").inc()
            log.warning(
                "batch %d: registry lookup of %s failed, keeping %s: %s",
                batch_id, self.reference.uri, self.current.identity, first_line(e),
            )  # fmt: skip
            return
        if identity.version == self.current.identity.version or identity.version in self._rejected:
            return
        try:
            candidate = self._load(identity)
            problems = self.current.schema.incompatibilities(candidate.schema)
            if problems:
                raise ModelLoadError(f"input schema incompatible: {'; '.join(problems)}")
        except Exception as e:
            self._rejected.add(str(identity.version))
            self.metrics.model_swap_failures.labels(reason="version_rejected").inc()
            log.error(
                "batch %d: %s moved to %s, which was rejected; keeping %s: %s",
                batch_id, self.reference.uri, identity, self.current.identity, first_line(e),
            )  # fmt: skip
            return
        previous = self.current.identity
        self._current = candidate
        self.metrics.model_swaps.inc()
        self.metrics.model_version.set(_numeric(identity.version))
        log.info("batch %d: swapped model %s -> %s", batch_id, previous, identity)

    def _resolve(self) -> ModelIdentity:
        ref = self.reference
        if ref.name and ref.alias:
            mv = self.client.get_model_version_by_alias(ref.name, ref.alias)
        elif ref.name and ref.version:
            mv = self.client.get_model_version(ref.name, ref.version)
        else:
            return ModelIdentity(uri=ref.uri, name=None, version=None, run_id=_run_id_of(ref.uri))
        return ModelIdentity(
            uri=f"models:/{ref.name}/{mv.version}",
            name=ref.name,
            version=str(mv.version),
            run_id=mv.run_id,
        )

    def _load(self, identity: ModelIdentity) -> LoadedModel:
        return load_model(self.spark, identity.uri, identity)


def _run_id_of(uri: str) -> str | None:
    match = re.match(r"^runs:/([^/]+)/", uri)
    return match.group(1) if match else None


def _numeric(version: str | None) -> float:
    return float(version) if version and version.isdigit() else float("nan")
