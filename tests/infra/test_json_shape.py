"""The JSON shape function compiled into the project's jar (``infra.json_shape``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

import infra.json_shape as json_shape_module
from infra.json_shape import JvmClassesMissingError, json_shape
from infra.jvm_packages import OWN_JAR, spark_jars_dir
from tests.conftest import SPARK_JARS

FIELDS = ["name", "size", "tag"]

# value -> the expected shape: what the value is, then how name, size and tag are given
SHAPES: dict[bytes | None, str | None] = {
    b'{"name": "a", "size": 2, "tag": null}': "osvn",
    b'{"size": 2.5}': "oava",
    b'{"name": 3, "tag": true, "other": {"name": "nested"}}': "ovav",
    b'{"name": ["a"], "size": {"n": 1}, "tag": NaN}': "ovvv",
    b'{"na\\u006de": "escaped key"}': "osaa",
    b'{"name": "a", "name": null}': "dnaa",
    b'{"other": 1, "other": 2}': "daaa",
    b'{"name": "a"} trailing': "tsaa",
    b'{"name": "a"}{"name": "b"}': "tsaa",
    b'{"name": "a"},{}': "tsaa",
    b'{"name": "a"}\n  ': "osaa",
    b'{"name": "a"': "xsaa",  # the fields read before it ended keep their characters
    b'{"name": 01}': "xaaa",
    b"{'name': 'a'}": "xaaa",
    b"[1, 2]": "xaaa",
    b"42": "xaaa",
    b"": "xaaa",
    b"   ": "xaaa",
    None: None,
}


def test_each_value_gets_its_shape(spark: SparkSession) -> None:
    rows = [(i, value) for i, value in enumerate(SHAPES)]
    frame = spark.createDataFrame(rows, "i int, value binary")
    got = {
        r.i: r.shape
        for r in frame.select("i", json_shape(F.col("value"), FIELDS).alias("shape")).collect()
    }
    assert got == {i: shape for i, shape in enumerate(SHAPES.values())}


def test_the_class_is_built_into_the_project_jars() -> None:
    jar = spark_jars_dir(Path(SPARK_JARS).resolve()) / OWN_JAR
    assert jar.is_file() and jar.stat().st_size > 0


def test_without_the_project_jar_the_error_says_how_to_ship_it(
    spark: SparkSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(json_shape_module, "_CLASS", "local.streaminginference.NotShipped")
    with pytest.raises(JvmClassesMissingError, match="spark-submit --jars"):
        json_shape(F.col("value"), FIELDS)
