"""The listings data set: its columns, a synthetic generator, and reading it for training.

The columns follow the San Francisco Airbnb listings the seed trains on. This module is the one
place that names the features and the label; everything else imports them from here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlparse

import numpy as np
import pandas as pd
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from infra.errors import first_line
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

ID_COLUMN: Final = "id"
LABEL_COLUMN: Final = "price"
FEATURE_COLUMNS: Final[tuple[str, ...]] = (
    "host_is_superhost",
    "cancellation_policy",
    "instant_bookable",
    "host_total_listings_count",
    "neighbourhood_cleansed",
    "latitude",
    "longitude",
    "property_type",
    "room_type",
    "accommodates",
    "bathrooms",
    "bedrooms",
    "beds",
    "bed_type",
    "minimum_nights",
    "number_of_reviews",
    "review_scores_rating",
    "review_scores_accuracy",
    "review_scores_cleanliness",
    "review_scores_checkin",
    "review_scores_communication",
    "review_scores_location",
    "review_scores_value",
)
CATEGORICAL_COLUMNS: Final[tuple[str, ...]] = (
    "host_is_superhost",
    "cancellation_policy",
    "instant_bookable",
    "neighbourhood_cleansed",
    "property_type",
    "room_type",
    "bed_type",
)
NUMERIC_COLUMNS: Final[tuple[str, ...]] = tuple(
    c for c in FEATURE_COLUMNS if c not in CATEGORICAL_COLUMNS
)

DataFormat = Literal["auto", "delta", "parquet", "csv"]

# name: (latitude, longitude, price factor, share of listings)
_NEIGHBOURHOODS: Final[dict[str, tuple[float, float, float, float]]] = {
    "Mission": (37.7599, -122.4148, 1.00, 9),
    "Western Addition": (37.7813, -122.4360, 1.00, 7),
    "South of Market": (37.7785, -122.4056, 1.10, 6),
    "Downtown/Civic Center": (37.7840, -122.4140, 0.95, 6),
    "Castro/Upper Market": (37.7609, -122.4350, 1.10, 6),
    "Haight Ashbury": (37.7692, -122.4481, 1.00, 5),
    "Bernal Heights": (37.7389, -122.4152, 0.95, 5),
    "Noe Valley": (37.7502, -122.4337, 1.10, 5),
    "Outer Sunset": (37.7550, -122.4950, 0.80, 5),
    "Nob Hill": (37.7930, -122.4161, 1.15, 4),
    "Marina": (37.8037, -122.4368, 1.30, 4),
    "Pacific Heights": (37.7925, -122.4382, 1.35, 4),
    "Inner Richmond": (37.7800, -122.4640, 0.90, 4),
    "Potrero Hill": (37.7605, -122.4009, 1.05, 3),
    "Bayview": (37.7298, -122.3920, 0.75, 3),
    "Outer Richmond": (37.7778, -122.4940, 0.85, 3),
    "Russian Hill": (37.8011, -122.4194, 1.35, 3),
    "North Beach": (37.8061, -122.4103, 1.20, 3),
    "Financial District": (37.7946, -122.3999, 1.25, 3),
    "Inner Sunset": (37.7602, -122.4680, 0.90, 3),
    "Excelsior": (37.7244, -122.4272, 0.70, 3),
    "Chinatown": (37.7941, -122.4078, 0.95, 2),
    "Outer Mission": (37.7230, -122.4470, 0.70, 2),
    "Visitacion Valley": (37.7133, -122.4040, 0.65, 1),
    "Glen Park": (37.7340, -122.4337, 0.95, 1),
    "Twin Peaks": (37.7544, -122.4477, 1.10, 1),
    "Presidio Heights": (37.7886, -122.4525, 1.40, 1),
    "Seacliff": (37.7856, -122.4895, 1.60, 0.5),
}
# name: (price factor, share of listings)
_PROPERTY_TYPES: Final[dict[str, tuple[float, float]]] = {
    "Apartment": (1.00, 45),
    "House": (1.05, 20),
    "Condominium": (1.05, 10),
    "Guest suite": (0.90, 6),
    "Boutique hotel": (1.20, 4),
    "Serviced apartment": (1.15, 3),
    "Townhouse": (1.05, 3),
    "Loft": (1.10, 2),
    "Guesthouse": (0.90, 2),
    "Hotel": (1.10, 2),
    "Hostel": (0.60, 1.5),
    "Bed and breakfast": (0.95, 1.5),
}
_ROOM_BASE_PRICE: Final[dict[str, float]] = {
    "Entire home/apt": 150.0,
    "Private room": 80.0,
    "Shared room": 45.0,
    "Hotel room": 160.0,
}
_CANCELLATION: Final[dict[str, float]] = {
    "strict_14_with_grace_period": 50,
    "moderate": 25,
    "flexible": 20,
    "super_strict_30": 4,
    "super_strict_60": 1,
}
_BED_TYPES: Final[dict[str, float]] = {
    "Real Bed": 96,
    "Futon": 1.5,
    "Pull-out Sofa": 1.5,
    "Couch": 0.5,
    "Airbed": 0.5,
}
_REVIEW_SUB_SCORES: Final = tuple(
    c for c in NUMERIC_COLUMNS if c.startswith("review_scores_") and c != "review_scores_rating"
)


def _pick(rng: np.random.Generator, weights: dict[str, float], n: int) -> np.ndarray:
    names = list(weights)
    p = np.array([weights[k] for k in names], dtype=float)
    return rng.choice(np.array(names, dtype=object), size=n, p=p / p.sum())


def _pick_factored(
    rng: np.random.Generator, table: dict[str, tuple[float, float]], n: int
) -> tuple[np.ndarray, np.ndarray]:
    names = rng.choice(
        np.array(list(table), dtype=object),
        size=n,
        p=np.array([v[1] for v in table.values()]) / sum(v[1] for v in table.values()),
    )
    return names, np.array([table[k][0] for k in names], dtype=float)


def generate_listings(n: int, seed: int = 42, start_id: int = 1) -> pd.DataFrame:
    """Generate ``n`` synthetic San Francisco listings with a believable price.

    Price grows with room type, size, neighbourhood, reviews and superhost status, with
    log-normal noise. Review scores are missing when a listing has no reviews; a few other
    values are missing at random, as in the real data.

    Args:
        n: Number of rows.
        seed: Seed of the random generator; the same seed gives the same rows.
        start_id: Id of the first row (ids are consecutive), so that batches can be appended.

    Returns:
        A frame with ``id``, the :data:`FEATURE_COLUMNS` (strings and floats, ``None``/``NaN``
        where missing) and ``price``.

    Raises:
        SettingsError: ``n`` is negative.
    """
    if n < 0:
        raise SettingsError(f"cannot generate {n} rows")
    rng = np.random.default_rng(seed)

    neighbourhood = _pick(rng, {k: v[3] for k, v in _NEIGHBOURHOODS.items()}, n)
    centre = np.array([_NEIGHBOURHOODS[k][:3] for k in neighbourhood], dtype=float).reshape(n, 3)
    latitude = np.round(centre[:, 0] + rng.normal(0, 0.005, n), 5)
    longitude = np.round(centre[:, 1] + rng.normal(0, 0.006, n), 5)
    place_factor = centre[:, 2]

    property_type, property_factor = _pick_factored(rng, _PROPERTY_TYPES, n)
    room_type = _pick(
        rng, {"Entire home/apt": 58, "Private room": 36, "Shared room": 3, "Hotel room": 3}, n
    )
    hotel = np.isin(property_type, ["Hotel", "Boutique hotel"])
    room_type = np.where(
        hotel, np.where(rng.random(n) < 0.7, "Hotel room", "Private room"), room_type
    )
    hostel = property_type == "Hostel"
    room_type = np.where(
        hostel, np.where(rng.random(n) < 0.6, "Shared room", "Private room"), room_type
    )
    entire = room_type == "Entire home/apt"

    accommodates = np.where(
        entire,
        rng.choice(
            np.arange(1, 11), n, p=[0.04, 0.3, 0.14, 0.22, 0.08, 0.12, 0.03, 0.04, 0.01, 0.02]
        ),
        rng.choice([1, 2, 3, 4], n, p=[0.35, 0.55, 0.06, 0.04]),
    ).astype(float)
    bedrooms = np.where(
        entire, np.clip(np.round(accommodates / 2 + rng.normal(0, 0.5, n)), 0, 6), 1.0
    )
    beds = np.clip(np.round(accommodates * 0.7 + rng.normal(0, 0.5, n)), 1, 12)
    bathrooms = np.where(
        entire,
        np.clip(np.round((1 + 0.4 * (bedrooms - 1) + rng.normal(0, 0.3, n)) * 2) / 2, 0.5, 5),
        rng.choice([1.0, 1.5, 2.0, 3.0], n, p=[0.6, 0.15, 0.15, 0.1]),
    )
    bed_type = _pick(rng, _BED_TYPES, n)

    superhost = rng.random(n) < 0.35
    instant_bookable = np.where(rng.random(n) < 0.4, "t", "f")
    cancellation_policy = _pick(rng, _CANCELLATION, n)
    host_listings = np.clip(np.round(rng.lognormal(0.3, 1.2, n)), 1, 800)
    host_listings = np.where(hotel, np.clip(host_listings * 20, 20, 800), host_listings)
    minimum_nights = rng.choice(
        [1, 2, 3, 4, 5, 7, 30, 60], n, p=[0.25, 0.25, 0.15, 0.05, 0.04, 0.04, 0.2, 0.02]
    ).astype(float)
    number_of_reviews = np.where(
        rng.random(n) < 0.12, 0, rng.negative_binomial(1, 0.02, n) + 1
    ).astype(float)
    rating = np.clip(np.round(100 - rng.gamma(1.5, 4.0, n) + 2 * superhost), 20, 100)
    sub_scores = {
        name: np.clip(np.round(rating / 10 + rng.normal(0, 0.4, n)), 2, 10)
        for name in _REVIEW_SUB_SCORES
    }

    price = (
        np.array([_ROOM_BASE_PRICE[r] for r in room_type])
        * place_factor
        * property_factor
        * np.clip(1 + 0.15 * (accommodates - 2), 0.8, None)
        + 35 * np.clip(bedrooms - 1, 0, None)
        + 25 * np.clip(bathrooms - 1, 0, None)
    )
    price = price * (1 + 0.03 * (rating - 94) / 3) * np.where(superhost, 1.06, 1.0)
    price = price * np.where(minimum_nights >= 30, 0.8, 1.0)
    price = np.clip(np.round(price * rng.lognormal(0, 0.22, n)), 10, 3000)

    def missing(share: float) -> np.ndarray:
        return rng.random(n) < share

    no_reviews = number_of_reviews == 0
    frame = pd.DataFrame(
        {
            ID_COLUMN: np.arange(start_id, start_id + n, dtype="int64"),
            "host_is_superhost": np.where(superhost, "t", "f").astype(object),
            "cancellation_policy": cancellation_policy,
            "instant_bookable": instant_bookable.astype(object),
            "host_total_listings_count": np.where(missing(0.002), np.nan, host_listings),
            "neighbourhood_cleansed": neighbourhood,
            "latitude": latitude,
            "longitude": longitude,
            "property_type": property_type,
            "room_type": room_type.astype(object),
            "accommodates": accommodates,
            "bathrooms": np.where(missing(0.005), np.nan, bathrooms),
            "bedrooms": np.where(missing(0.003), np.nan, bedrooms),
            "beds": np.where(missing(0.003), np.nan, beds),
            "bed_type": bed_type,
            "minimum_nights": minimum_nights,
            "number_of_reviews": number_of_reviews,
            "review_scores_rating": np.where(no_reviews | missing(0.02), np.nan, rating),
            **{
                name: np.where(no_reviews | missing(0.02), np.nan, values)
                for name, values in sub_scores.items()
            },
            LABEL_COLUMN: price,
        }
    )
    frame.loc[missing(0.002), "host_is_superhost"] = None
    return frame[[ID_COLUMN, *FEATURE_COLUMNS, LABEL_COLUMN]]


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
        if (local / "_delta_log").is_dir():
            return "delta"
        if local.name.lower().endswith((".csv", ".csv.gz")) or (
            local.is_dir() and any(local.glob("*.csv*")) and not any(local.glob("*.parquet"))
        ):
            return "csv"
        return "parquet"
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
