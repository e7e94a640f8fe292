"""Which model scored a row: the lineage the predictions table records."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ModelIdentity"]


@dataclass(frozen=True)
class ModelIdentity:
    """Which model scored a row: registered name and version (when from the registry), run id."""

    uri: str
    name: str | None
    version: str | None
    run_id: str | None

    def __str__(self) -> str:
        return f"{self.name} v{self.version}" if self.name else self.uri
