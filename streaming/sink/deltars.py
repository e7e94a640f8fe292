"""Opening a table with delta-rs, for the commands that read or clean one without Spark."""

from __future__ import annotations

from typing import TYPE_CHECKING

from streaming.errors import ConfigurationError

if TYPE_CHECKING:
    from deltalake import DeltaTable

__all__ = ["open_table"]


def open_table(path: str) -> DeltaTable:
    """The Delta table at ``path``, read with delta-rs (no Spark).

    Raises:
        ConfigurationError: there is no Delta table at ``path``.
    """
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(path)
    except TableNotFoundError:
        raise ConfigurationError(f"no Delta table at {path}") from None
