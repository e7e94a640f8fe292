"""Which model scores each batch: the URI's model, following its alias at batch boundaries."""

from __future__ import annotations

import logging
import re
import threading
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

    Two ways to follow the alias. In the background (:meth:`follow_in_background`, what the
    service does): a thread looks the alias up every ``poll_seconds``, loads and checks a new
    version off the batch path, and the next batch boundary switches to it once it is ready,
    so a swap or a rejected version never stalls a batch. Or inline (no thread, as in a test
    calling the processor directly): the look-up happens at a batch boundary, at most every
    ``poll_seconds``.

    Args:
        spark: The session models are loaded into.
        model_uri: ``models:/NAME@ALIAS`` (followed), ``models:/NAME/VERSION`` or any MLflow URI.
        client: The registry client.
        poll_seconds: How often, at most, the alias is looked up.
        metrics: Where swaps and failed swaps are counted.
        clock: Monotonic seconds; injectable for tests.
        prepare: Called with every version loaded, in the thread that loaded it (the service
            builds the version's record judge there, off the batch path).
        admit: Called with every version before it is loaded; raises to refuse it (the
            real-time query refuses a model that is not MLlib from its metadata alone).
    """

    def __init__(
        self,
        spark: SparkSession,
        model_uri: str,
        client: MlflowClient,
        poll_seconds: float = 30.0,
        metrics: ServiceMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        prepare: Callable[[LoadedModel], object] | None = None,
        admit: Callable[[ModelIdentity], object] | None = None,
    ) -> None:
        self.spark = spark
        self.reference = ModelReference.parse(model_uri)
        self.client = client
        self.poll_seconds = poll_seconds
        self.metrics = metrics or ServiceMetrics()
        self.clock = clock
        self.prepare = prepare
        self.admit = admit
        self._current: LoadedModel | None = None
        self._ready: LoadedModel | None = None  # checked in the background, not yet serving
        self._last_poll = 0.0
        self._rejected: set[str] = set()
        self._follower: threading.Thread | None = None
        self._stop_following = threading.Event()

    @property
    def current(self) -> LoadedModel:
        if self._current is None:
            raise RuntimeError("ModelProvider.start() was not called")
        return self._current

    @property
    def ready_version(self) -> str | None:
        """A version loaded and checked in the background that the next batch will switch to."""
        ready = self._ready
        return ready.identity.version if ready is not None else None

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

    def follow_in_background(self) -> None:
        """Start the thread that prepares new versions of the alias (no-op without an alias)."""
        if self.reference.alias is None or self._follower is not None:
            return
        self._follower = threading.Thread(
            target=self._follow_loop, name="model-follower", daemon=True
        )
        self._follower.start()

    def stop_following(self, timeout_s: float = 30.0) -> None:
        """Stop the background thread (a version being loaded is finished first)."""
        self._stop_following.set()
        if self._follower is not None:
            self._follower.join(timeout_s)
            self._follower = None

    def _follow_loop(self) -> None:
        while not self._stop_following.wait(max(self.poll_seconds, 0.5)):
            try:
                candidate = self._candidate("background")
            except Exception:  # never let the follower die; the current model keeps serving
                log.exception("looking for a new version of %s failed", self.reference.uri)
                continue
            if candidate is not None:
                self._ready = candidate

    def for_batch(self, batch_id: int) -> LoadedModel:
        """The model to score batch ``batch_id`` with: a version made ready since the last batch,
        or (inline mode) the alias's new version if it is time to look."""
        if self._follower is not None:
            ready, self._ready = self._ready, None
            if ready is not None:
                self._swap(ready, batch_id)
        elif self.reference.alias and self.clock() - self._last_poll >= self.poll_seconds:
            self._last_poll = self.clock()
            candidate = self._candidate(f"batch {batch_id}")
            if candidate is not None:
                self._swap(candidate, batch_id)
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
        return self._load(identity)

    def _candidate(self, when: str) -> LoadedModel | None:
        """The alias's version if it is new, loaded and checked; ``None`` to keep serving."""
        try:
            identity = self._resolve()
        except Exception as e:
            self.metrics.model_swap_failures.labels(reason="registry_unreachable").inc()
            log.warning(
                "%s: registry lookup of %s failed, keeping %s: %s",
                when, self.reference.uri, self.current.identity, first_line(e),
            )  # fmt: skip
            return None
        known = {self.current.identity.version, *self._rejected}
        if self._ready is not None:
            known.add(self._ready.identity.version)
        if identity.version in known:
            return None
        try:
            candidate = self._load(identity)
            problems = self.current.schema.incompatibilities(candidate.schema)
            if problems:
                raise ModelLoadError(f"input schema incompatible: {'; '.join(problems)}")
        except Exception as e:
            self._rejected.add(str(identity.version))
            self.metrics.model_swap_failures.labels(reason="version_rejected").inc()
            log.error(
                "%s: %s moved to %s, which was rejected; keeping %s: %s",
                when, self.reference.uri, identity, self.current.identity, first_line(e),
            )  # fmt: skip
            return None
        return candidate

    def _swap(self, candidate: LoadedModel, batch_id: int) -> None:
        previous = self.current.identity
        self._current = candidate
        self.metrics.model_swaps.inc()
        self.metrics.model_version.set(_numeric(candidate.identity.version))
        log.info("batch %d: swapped model %s -> %s", batch_id, previous, candidate.identity)

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
        if self.admit is not None:
            self.admit(identity)
        loaded = load_model(self.spark, identity.uri, identity)
        if self.prepare is not None:
            self.prepare(loaded)
        return loaded


def _run_id_of(uri: str) -> str | None:
    match = re.match(r"^runs:/([^/]+)/", uri)
    return match.group(1) if match else None


def _numeric(version: str | None) -> float:
    return float(version) if version and version.isdigit() else float("nan")
