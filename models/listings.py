"""The listings data set for training: writing, reading and conforming it with Spark.

The columns and the synthetic generator are :mod:`infra.listings` (plain data, no Spark), which
``streaming``'s producer uses too; they are re-exported here for the model lifecycle.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import pandas as pd
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from infra.errors import first_line
from infra.listings import (
    CATEGORICAL_COLUMNS,
    FEATURE_COLUMNS,
    ID_COLUMN,
    LABEL_COLUMN,
    NUMERIC_COLUMNS,
    generate_listings,
)
from infra.tables import local_table_format
from models.errors import DataError, SettingsError

__all__ = [
    "CATEGORICAL_COLUMNS",
    "FEATURE_COLUMNS",
    "ID_COLUMN",
    "LABEL_COLUMN",
    "NUMERIC_COLUMNS",
    "DataFormat",
    "DataSource",
    "ListingsData",
    "arrange_partitions",
    "check_data_path",
    "conform_listings",
    "data_fingerprint",
    "delta_version",
    "generate_listings",
    "holdout_flag",
    "is_missing_local_path",
    "listings_schema",
    "load_listings",
    "next_listing_id",
    "split_listings",
    "write_listings",
]

_log = logging.getLogger(__name__)

DataFormat = Literal["auto", "delta", "parquet", "csv"]


def next_listing_id(spark: SparkSession, path: str) -> int:
    """The id after the largest one in an existing listings table (1 when it is empty)."""
    row = spark.read.format("delta").load(path).agg(F.max(ID_COLUMN).alias("top")).first()
    return 1 if row is None or row["top"] is None else int(row["top"]) + 1


def listings_schema() -> T.StructType:
    """The Spark schema of a listings table: ``id``, the features and ``price``."""
    return T.StructType(
        [T.StructField(ID_COLUMN, T.LongType())]
        + [
            T.StructField(c, T.StringType() if c in CATEGORICAL_COLUMNS else T.DoubleType())
            for c in FEATURE_COLUMNS
        ]
        + [T.StructField(LABEL_COLUMN, T.DoubleType())]
    )


def write_listings(
    spark: SparkSession, frame: pd.DataFrame, path: str, mode: str = "overwrite"
) -> int:
    """Write listings to a Delta table (``NaN`` becomes null).

    Args:
        spark: The session.
        frame: Rows shaped like :func:`generate_listings` returns.
        path: The table's folder or URI.
        mode: ``overwrite`` or ``append``.

    Returns:
        The Delta version written.
    """
    schema = listings_schema()
    records = frame[schema.fieldNames()].astype(object).where(frame.notna(), None)
    df = spark.createDataFrame(records.to_numpy().tolist(), schema=schema)
    df.write.format("delta").mode(mode).save(path)
    return delta_version(spark, path)


@dataclass(frozen=True)
class DataSource:
    """Where training data lives.

    Attributes:
        path: A folder or file path, or a URI Spark can read (``s3a://``, ``abfss://``...).
        format: ``delta``, ``parquet``, ``csv``, or ``auto`` (Delta when the folder holds a
            ``_delta_log``, CSV when the name ends in ``.csv``, Parquet otherwise).
        version: The Delta version to read (time travel); ``None`` reads the latest and pins it.
    """

    path: str
    format: DataFormat = "auto"
    version: int | None = None


@dataclass(frozen=True)
class ListingsData:
    """Listings read for training: ``id`` (when the source has one), features and label.

    Attributes:
        frame: Typed columns: strings for categoricals, doubles for numerics and the label.
        path: The path read.
        format: The format read (never ``auto``).
        version: The Delta version read; ``None`` for Parquet and CSV.
        key_columns: Columns identifying a row: ``id`` if present, else every column.
    """

    frame: DataFrame
    path: str
    format: str
    version: int | None
    key_columns: tuple[str, ...]


def _local_path(path: str) -> Path | None:
    parsed = urlparse(path)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme else path)
    return None


def is_missing_local_path(path: str) -> bool:
    """Whether ``path`` is a local path (or ``file:`` URI) that does not exist."""
    local = _local_path(path)
    return local is not None and not local.exists()


def check_data_path(path: str) -> None:
    """Fail early when a local data path does not exist (remote URIs are checked on read).

    Raises:
        DataError: the local path does not exist.
    """
    if is_missing_local_path(path):
        raise DataError(
            f"data path {path} does not exist: give a Delta table, a Parquet or CSV path "
            "(--data-path / MODELS_DATA_PATH), or create one with `python -m models generate-data`"
        )


def _detect_format(spark: SparkSession, path: str) -> str:
    from delta.tables import DeltaTable

    local = _local_path(path)
    if local is not None:
        return local_table_format(local) or "parquet"
    if DeltaTable.isDeltaTable(spark, path):
        return "delta"
    return "csv" if path.lower().endswith((".csv", ".csv.gz")) else "parquet"


def delta_version(spark: SparkSession, path: str) -> int:
    """The latest version of the Delta table at ``path``.

    Raises:
        DataError: ``path`` is not a Delta table.
    """
    from delta.tables import DeltaTable

    try:
        row = DeltaTable.forPath(spark, path).history(1).select("version").first()
    except AnalysisException as e:
        raise DataError(f"{path} is not a Delta table: {first_line(e)}") from e
    if row is None:
        raise DataError(f"Delta table {path} has no history")
    return int(row["version"])


def _read(spark: SparkSession, source: DataSource) -> tuple[DataFrame, str, int | None]:
    fmt = source.format if source.format != "auto" else _detect_format(spark, source.path)
    if fmt != "delta" and source.version is not None:
        raise DataError(
            f"--data-version {source.version} needs a Delta table, but {source.path} is {fmt}"
        )
    try:
        if fmt == "delta":
            version = source.version
            if version is None:
                version = delta_version(spark, source.path)
            # Reading the pinned version, not the latest: a concurrent append cannot slip in.
            df = spark.read.format("delta").option("versionAsOf", version).load(source.path)
            return df, fmt, version
        if fmt == "csv":
            reader = spark.read.option("header", True).option("inferSchema", True)
            return (
                reader.option("multiLine", True).option("escape", '"').csv(source.path),
                fmt,
                None,
            )
        return spark.read.parquet(source.path), fmt, None
    except AnalysisException as e:
        raise DataError(f"cannot read {fmt} data at {source.path}: {first_line(e)}") from e


def _null_double() -> Column:
    return F.lit(None).cast("double")


def _as_double(column: str, data_type: T.DataType) -> Column:
    if isinstance(data_type, T.StringType):
        # Airbnb exports write prices as "$1,250.00".
        return F.regexp_replace(F.col(column), r"[$,]", "").try_cast("double")
    if isinstance(data_type, T.BooleanType):
        return F.col(column).cast("int").cast("double")
    return F.col(column).try_cast("double")


def _as_string(column: str, data_type: T.DataType) -> Column:
    if isinstance(data_type, T.BooleanType):
        # Airbnb's own convention for flags.
        return F.when(F.col(column), F.lit("t")).when(~F.col(column), F.lit("f"))
    return F.col(column).cast("string")


def conform_listings(
    df: DataFrame,
    categorical_columns: Sequence[str] = CATEGORICAL_COLUMNS,
    numeric_columns: Sequence[str] = NUMERIC_COLUMNS,
    label_column: str = LABEL_COLUMN,
    source_name: str = "the data",
) -> tuple[DataFrame, tuple[str, ...]]:
    """Select and type the columns the model needs; keep rows with a positive label.

    Categoricals become strings, numerics and the label doubles (``NaN`` becomes null, text
    that is not a number becomes null). Extra columns are dropped.

    Returns:
        The conformed frame (``id`` first when present, then features in the given order, then
        the label) and its key columns (``id``, or every column when there is none).

    Raises:
        DataError: the label or a feature column is missing.
    """
    types = {f.name: f.dataType for f in df.schema.fields}
    if label_column not in types:
        raise DataError(
            f"{source_name} has no label column {label_column!r}: add it (the listing price) "
            f"or pick another table; columns found: {', '.join(sorted(types)) or 'none'}"
        )
    features = [*categorical_columns, *numeric_columns]
    missing = [c for c in features if c not in types]
    if missing:
        raise DataError(f"{source_name} lacks feature column(s) {', '.join(missing)}")
    has_id = ID_COLUMN in types
    columns = [F.col(ID_COLUMN).cast("string").alias(ID_COLUMN)] if has_id else []
    columns += [_as_string(c, types[c]).alias(c) for c in categorical_columns]
    columns += [F.nanvl(_as_double(c, types[c]), _null_double()).alias(c) for c in numeric_columns]
    columns += [
        F.nanvl(_as_double(label_column, types[label_column]), _null_double()).alias(label_column)
    ]
    conformed = df.select(*columns).where(F.col(label_column) > 0)
    keys = (ID_COLUMN,) if has_id else (*features, label_column)
    return conformed, keys


def load_listings(
    spark: SparkSession,
    source: DataSource,
    categorical_columns: Sequence[str] = CATEGORICAL_COLUMNS,
    numeric_columns: Sequence[str] = NUMERIC_COLUMNS,
    label_column: str = LABEL_COLUMN,
) -> ListingsData:
    """Read listings from Delta (pinned to a version), Parquet or CSV and conform them.

    Only the given feature columns and the label are kept, so columns added to the table
    later do not change what a recorded run reads.

    Returns:
        The conformed data with the format and Delta version read.

    Raises:
        DataError: the path does not exist or cannot be read, the Delta version does not
            exist, or a needed column is missing.
    """
    check_data_path(source.path)
    df, fmt, version = _read(spark, source)
    name = f"{fmt} data at {source.path}" + (f" (version {version})" if version is not None else "")
    frame, keys = conform_listings(df, categorical_columns, numeric_columns, label_column, name)
    return ListingsData(
        frame=frame, path=source.path, format=fmt, version=version, key_columns=keys
    )


def holdout_flag(key_columns: Sequence[str], seed: int, holdout_fraction: float) -> Column:
    """A boolean column: whether a row belongs to the holdout.

    Membership depends only on the row's key and the seed, never on partitioning or row
    order, so the same rows are held out on every read, and rows appended later never move
    an old row between train and holdout.
    """
    buckets = 10_000
    bucket = F.pmod(F.xxhash64(F.lit(seed), *[F.col(c) for c in key_columns]), F.lit(buckets))
    return bucket < F.lit(round(holdout_fraction * buckets))


def split_listings(
    frame: DataFrame, key_columns: Sequence[str], seed: int, holdout_fraction: float
) -> tuple[DataFrame, DataFrame]:
    """Split rows into train and holdout by a hash of their key (see :func:`holdout_flag`).

    Returns:
        ``(train, holdout)``.

    Raises:
        SettingsError: the fraction is not strictly between 0 and 1.
    """
    if not 0 < holdout_fraction < 1:
        raise SettingsError(f"holdout fraction must be between 0 and 1, got {holdout_fraction}")
    flag = holdout_flag(key_columns, seed, holdout_fraction)
    return frame.where(~flag), frame.where(flag)


def arrange_partitions(frame: DataFrame, key_columns: Sequence[str], partitions: int) -> DataFrame:
    """Lay rows out by a hash of their key, sorted within each partition.

    Seeded Spark estimators (bootstrap samples, feature subsets, fold assignment) draw per
    partition, so the same rows must land in the same partitions in the same order whatever
    the files, the cluster size or ``spark.sql.files.maxPartitionBytes``.
    """
    keys = [F.col(c) for c in key_columns]
    # The other columns break ties between duplicate keys; identical rows are interchangeable.
    rest = [F.col(c) for c in frame.columns if c not in key_columns]
    return frame.repartition(partitions, *keys).sortWithinPartitions(*keys, *rest)


def data_fingerprint(frame: DataFrame) -> tuple[int, str]:
    """Row count and an order-independent content hash of a frame.

    Returns:
        ``(rows, hash)``; equal frames (as multisets of rows) give equal results.
    """
    row = frame.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.xxhash64(*frame.columns).cast("decimal(38,0)")).alias("hash"),
    ).first()
    assert row is not None
    return int(row["rows"]), str(row["hash"] or 0)
