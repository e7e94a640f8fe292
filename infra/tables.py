"""What format a local table is in, told from its path alone (no Spark, nothing read)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

__all__ = ["TableFormat", "local_table_format"]

TableFormat = Literal["delta", "parquet", "csv"]


def local_table_format(path: Path) -> TableFormat | None:
    """The format of the local file or folder ``path``, or ``None`` when the path does not say.

    Delta when the folder holds a ``_delta_log``; CSV when the name ends in ``.csv`` or
    ``.csv.gz``, or the folder (or a folder under it) holds CSV files and no Parquet file;
    Parquet when the name ends in ``.parquet`` or ``.pq``, or the folder holds Parquet files.
    """
    name = path.name.lower()
    if (path / "_delta_log").is_dir():
        return "delta"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if path.is_dir():
        if next(path.rglob("*.parquet"), None) is not None:
            return "parquet"
        if next(path.rglob("*.csv*"), None) is not None:
            return "csv"
    return None
