"""DuckDB with its ``delta`` extension, loaded from the pinned package instead of downloaded."""

from __future__ import annotations

from pathlib import Path

import duckdb

__all__ = ["duckdb_with_delta"]


def duckdb_with_delta() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the delta extension loaded from its pinned package (no download).

    Raises:
        duckdb.Error: the package holds no extension for this DuckDB version.
    """
    import duckdb_extension_delta

    extension = (
        Path(duckdb_extension_delta.__file__).parent
        / "extensions"
        / f"v{duckdb.__version__}"
        / "delta.duckdb_extension"
    )
    connection = duckdb.connect()
    connection.execute(f"LOAD '{extension}'")
    return connection
