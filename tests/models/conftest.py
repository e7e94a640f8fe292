"""Fixtures of the model lifecycle tests: a listings Delta table, fresh model names."""

from __future__ import annotations

import uuid

import pytest
from pyspark.sql import SparkSession

from models.listings import generate_listings, write_listings
from tests.models.support import TABLE_ROWS


@pytest.fixture(scope="session")
def listings_table(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Delta table of generated listings at version 0, shared read-only by the tests."""
    path = str(tmp_path_factory.mktemp("data") / "listings")
    write_listings(spark, generate_listings(TABLE_ROWS, seed=7), path)
    return path


@pytest.fixture
def model_name() -> str:
    """A registered model name of this test's own."""
    return f"listing-price-test-{uuid.uuid4().hex[:8]}"
