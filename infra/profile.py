"""The training data's profile: what the model has seen, logged beside it and checked per event.

``models`` writes it when a model is logged (in the MLmodel file's ``metadata``, under
:data:`PROFILE_METADATA_KEY`, and as the run artifact ``data_profile.json``); ``streaming``
reads it with the model and checks each event against it. Plain data, no Spark.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.errors import ProjectError

__all__ = [
    "PROFILE_FORMAT",
    "PROFILE_METADATA_KEY",
    "CategoricalProfile",
    "DataProfile",
    "NumericProfile",
    "ProfileError",
]

PROFILE_METADATA_KEY = "data_profile"
PROFILE_FORMAT = 1


class ProfileError(ProjectError):
    """A logged profile cannot be read (unknown format or missing keys)."""


@dataclass(frozen=True)
class NumericProfile:
    """A numeric feature over the training rows.

    Attributes:
        minimum: Smallest finite value seen.
        maximum: Largest finite value seen.
        quantiles: Approximate quantiles of the finite values, keyed ``"p01"``, ``"p50"``, ...
        null_rate: Share of rows where the feature was null (or NaN).
    """

    minimum: float
    maximum: float
    quantiles: Mapping[str, float] = field(default_factory=dict)
    null_rate: float = 0.0


@dataclass(frozen=True)
class CategoricalProfile:
    """A categorical feature over the training rows.

    Attributes:
        values: The values seen (all of them when ``complete``).
        complete: False when there were more distinct values than were kept; then no value is
            called unseen.
        null_rate: Share of rows where the feature was null.
    """

    values: frozenset[str]
    complete: bool = True
    null_rate: float = 0.0


@dataclass(frozen=True)
class DataProfile:
    """Per-feature profile of the rows a model was trained on."""

    rows: int
    numeric: Mapping[str, NumericProfile] = field(default_factory=dict)
    categorical: Mapping[str, CategoricalProfile] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON- and YAML-safe form (what is logged)."""
        return {
            "format": PROFILE_FORMAT,
            "rows": self.rows,
            "numeric": {
                name: {
                    "min": p.minimum,
                    "max": p.maximum,
                    "quantiles": dict(p.quantiles),
                    "null_rate": p.null_rate,
                }
                for name, p in self.numeric.items()
            },
            "categorical": {
                name: {
                    "values": sorted(p.values),
                    "complete": p.complete,
                    "null_rate": p.null_rate,
                }
                for name, p in self.categorical.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataProfile:
        """Read what :meth:`to_dict` wrote.

        Raises:
            ProfileError: an unknown format, or a key missing.
        """
        if data.get("format") != PROFILE_FORMAT:
            raise ProfileError(
                f"data profile format {data.get('format')!r} is not {PROFILE_FORMAT}; "
                "log the model again with this version of the project"
            )
        try:
            numeric = {
                str(name): NumericProfile(
                    minimum=float(p["min"]),
                    maximum=float(p["max"]),
                    quantiles={str(k): float(v) for k, v in p.get("quantiles", {}).items()},
                    null_rate=float(p.get("null_rate", 0.0)),
                )
                for name, p in data.get("numeric", {}).items()
            }
            categorical = {
                str(name): CategoricalProfile(
                    values=frozenset(str(v) for v in p["values"]),
                    complete=bool(p.get("complete", True)),
                    null_rate=float(p.get("null_rate", 0.0)),
                )
                for name, p in data.get("categorical", {}).items()
            }
            return cls(rows=int(data["rows"]), numeric=numeric, categorical=categorical)
        except (KeyError, TypeError, ValueError) as e:
            raise ProfileError(f"data profile unreadable: {type(e).__name__}: {e}") from e

    def ranges(self) -> dict[str, tuple[float, float]]:
        """Finite ``(min, max)`` of each numeric feature that had finite values."""
        return {
            name: (p.minimum, p.maximum)
            for name, p in self.numeric.items()
            if math.isfinite(p.minimum) and math.isfinite(p.maximum)
        }

    def categories(self) -> dict[str, frozenset[str]]:
        """The values seen of each categorical feature whose values were all kept."""
        return {name: p.values for name, p in self.categorical.items() if p.complete}
