"""The listings schema, generator, readers and the deterministic split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from models.errors import DataError
from models.listings import (
    CATEGORICAL_COLUMNS,
    FEATURE_COLUMNS,
    ID_COLUMN,
    LABEL_COLUMN,
    NUMERIC_COLUMNS,
    DataSource,
    arrange_partitions,
    conform_listings,
    data_fingerprint,
    generate_listings,
    load_listings,
    next_listing_id,
    split_listings,
    write_listings,
)

REVIEW_SCORES = [c for c in NUMERIC_COLUMNS if c.startswith("review_scores_")]


def test_feature_lists_split_features_into_categoricals_and_numerics() -> None:
    assert set(CATEGORICAL_COLUMNS) | set(NUMERIC_COLUMNS) == set(FEATURE_COLUMNS)
    assert not set(CATEGORICAL_COLUMNS) & set(NUMERIC_COLUMNS)
    assert LABEL_COLUMN == "price"
    assert LABEL_COLUMN not in FEATURE_COLUMNS
    assert len(set(FEATURE_COLUMNS)) == len(FEATURE_COLUMNS) == 23


def test_generator_is_seeded_and_typed() -> None:
    frame = generate_listings(400, seed=3, start_id=100)

    pd.testing.assert_frame_equal(frame, generate_listings(400, seed=3, start_id=100))
    assert not frame.equals(generate_listings(400, seed=4, start_id=100))
    assert list(frame.columns) == [ID_COLUMN, *FEATURE_COLUMNS, LABEL_COLUMN]
    assert frame[ID_COLUMN].tolist() == list(range(100, 500))
    assert all(frame[c].dtype == object for c in CATEGORICAL_COLUMNS)
    assert all(frame[c].dtype == np.float64 for c in [*NUMERIC_COLUMNS, LABEL_COLUMN])
    assert set(frame["host_is_superhost"].dropna()) == {"t", "f"}
    assert set(frame["instant_bookable"]) == {"t", "f"}


def test_generated_prices_and_gaps_look_like_the_airbnb_data() -> None:
    frame = generate_listings(5000, seed=1)

    by_room = frame.groupby("room_type")[LABEL_COLUMN].mean()
    assert by_room["Entire home/apt"] > by_room["Private room"] > by_room["Shared room"]
    assert frame[LABEL_COLUMN].corr(frame["accommodates"]) > 0.4
    assert frame[LABEL_COLUMN].min() >= 10
    # No reviews, no review scores; some other values are missing at random too.
    no_reviews = frame["number_of_reviews"] == 0
    assert no_reviews.sum() > 0
    assert frame.loc[no_reviews, REVIEW_SCORES].isna().all().all()
    assert frame.loc[~no_reviews, "review_scores_rating"].notna().mean() > 0.95
    for column in ("bathrooms", "bedrooms", "beds", "host_is_superhost"):
        assert 0 < frame[column].isna().sum() < 60


def test_write_listings_stores_nulls_and_returns_the_version(
    spark: SparkSession, tmp_path: Path
) -> None:
    path = str(tmp_path / "t")
    frame = generate_listings(300, seed=5)

    assert write_listings(spark, frame, path) == 0
    assert write_listings(spark, generate_listings(10, seed=6, start_id=301), path, "append") == 1
    table = spark.read.format("delta").load(path)
    assert table.count() == 310
    assert table.where(F.isnan("bathrooms")).count() == 0
    assert table.where(F.col("bathrooms").isNull()).count() == frame["bathrooms"].isna().sum()
    assert next_listing_id(spark, path) == 311


def _rows(df: DataFrame) -> list[Row]:
    return df.orderBy(ID_COLUMN).collect()


def test_delta_parquet_and_csv_read_alike(spark: SparkSession, tmp_path: Path) -> None:
    frame = generate_listings(60, seed=9)
    delta = str(tmp_path / "delta")
    write_listings(spark, frame, delta)
    parquet = str(tmp_path / "listings.parquet")
    spark.read.format("delta").load(delta).write.parquet(parquet)
    csv = tmp_path / "listings.csv"
    # Airbnb exports write prices as "$1,250.00" and flags as t/f.
    frame.assign(price=frame[LABEL_COLUMN].map(lambda p: f"${p:,.2f}")).to_csv(csv, index=False)

    read = {
        fmt: load_listings(spark, DataSource(path))
        for fmt, path in {"delta": delta, "parquet": parquet, "csv": str(csv)}.items()
    }

    assert {fmt: (data.format, data.version) for fmt, data in read.items()} == {
        "delta": ("delta", 0),
        "parquet": ("parquet", None),
        "csv": ("csv", None),
    }
    expected = _rows(read["delta"].frame)
    assert len(expected) == 60
    assert _rows(read["parquet"].frame) == expected
    assert _rows(read["csv"].frame) == expected
    assert read["delta"].frame.columns == [
        ID_COLUMN,
        *CATEGORICAL_COLUMNS,
        *NUMERIC_COLUMNS,
        LABEL_COLUMN,
    ]


def test_conform_listings_types_columns_and_drops_unusable_labels(spark: SparkSession) -> None:
    raw = spark.createDataFrame(
        [
            (1, True, "7", "$1,250.00", float("nan"), "extra"),
            (2, False, None, "80", 2.0, "extra"),
            (3, None, "2", None, 1.0, "extra"),
            (4, True, "2", "0", 1.0, "extra"),
        ],
        "id long, host_is_superhost boolean, bedrooms string, price string, beds double, x string",
    )

    conformed, keys = conform_listings(raw, ["host_is_superhost"], ["bedrooms", "beds"])

    assert keys == (ID_COLUMN,)
    assert conformed.dtypes == [
        ("id", "string"),
        ("host_is_superhost", "string"),
        ("bedrooms", "double"),
        ("beds", "double"),
        ("price", "double"),
    ]
    assert conformed.orderBy("id").collect() == [
        Row(id="1", host_is_superhost="t", bedrooms=7.0, beds=None, price=1250.0),
        Row(id="2", host_is_superhost="f", bedrooms=None, beds=2.0, price=80.0),
    ]


def test_conform_listings_names_the_missing_columns(spark: SparkSession) -> None:
    df = spark.createDataFrame([(1, "t")], "id long, host_is_superhost string")

    with pytest.raises(DataError, match="has no label column 'price'"):
        conform_listings(df, ["host_is_superhost"], [])
    with pytest.raises(DataError, match="lacks feature column\\(s\\) room_type, beds"):
        conform_listings(df.withColumn("price", F.lit(1.0)), ["room_type"], ["beds"])


def test_load_listings_rejects_unknown_paths_and_versions(
    spark: SparkSession, tmp_path: Path, listings_table: str
) -> None:
    with pytest.raises(DataError, match=f"data path {tmp_path / 'nope'} does not exist"):
        load_listings(spark, DataSource(str(tmp_path / "nope")))
    with pytest.raises(DataError, match="cannot read delta data"):
        load_listings(spark, DataSource(listings_table, version=99))
    with pytest.raises(DataError, match="needs a Delta table"):
        load_listings(spark, DataSource(str(tmp_path), format="parquet", version=1))


def test_split_depends_on_keys_and_seed_only(spark: SparkSession) -> None:
    frame = spark.createDataFrame(generate_listings(1000, seed=2)).select("id", "price")
    frame = frame.withColumn("id", F.col("id").cast("string"))

    def holdout_ids(df: DataFrame, seed: int = 5) -> set[str]:
        _, holdout = split_listings(df, ["id"], seed, 0.2)
        return {row.id for row in holdout.collect()}

    base = holdout_ids(frame.repartition(1))
    assert holdout_ids(frame.repartition(7)) == base
    assert holdout_ids(frame.orderBy(F.desc("price"))) == base
    assert 150 < len(base) < 250
    assert holdout_ids(frame, seed=6) != base
    # Rows appended later never move an old row between train and holdout.
    more = spark.createDataFrame(
        [(str(i), 1.0) for i in range(5000, 5500)], "id string, price double"
    )
    assert holdout_ids(frame.unionByName(more)) & {str(i) for i in range(1, 1001)} == base


def test_arrange_partitions_is_independent_of_the_input_layout(spark: SparkSession) -> None:
    frame = spark.createDataFrame(generate_listings(300, seed=4)).select("id", "room_type", "price")

    def layout(df: DataFrame) -> list[list[Row]]:
        return arrange_partitions(df, ["id"], 3).rdd.glom().collect()

    assert layout(frame.repartition(1)) == layout(frame.repartition(5).orderBy(F.rand(1)))


def test_fingerprint_ignores_order_but_not_content(spark: SparkSession) -> None:
    frame = spark.createDataFrame([(1, "a"), (2, None), (3, "c")], "id long, s string")

    rows, digest = data_fingerprint(frame)

    assert rows == 3
    assert data_fingerprint(frame.orderBy(F.desc("id")).repartition(3)) == (3, digest)
    assert data_fingerprint(frame.where("id < 3"))[1] != digest
