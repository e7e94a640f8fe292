"""The JSON shape and reason functions compiled into the project's jar (``infra.json_shape``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

import infra.json_shape as json_shape_module
from infra.json_shape import JvmClassesMissingError, json_reason, json_shape
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


# name, type as the detail says it, required
REASON_FIELDS = [("name", "string", True), ("size", "double", True), ("tag", "string", False)]
DEEP = 5

# (value, the fields the typed parse left null) -> (kind, detail), or None: nothing wrong
REASONS: dict[tuple[bytes, str], tuple[str, str] | None] = {
    (b'{"name": "a", "size": 2}', "001"): None,
    (b'{"name": "a", "size": 2, "name": "b", "size": null}', "000"): (
        "duplicate_field",
        "field 'name' given twice; field 'size' given twice",
    ),
    (b'{"tag": "t"}', "110"): (
        "missing_field",
        "missing field 'name'; missing field 'size'",
    ),
    (b'{"name": "a", "other": {"size": 1}}', "011"): ("missing_field", "missing field 'size'"),
    (b'{"name": "a", "size": "two", "tag": {"k": [1, true]}}', "011"): (
        "type_mismatch",
        "field 'size' is not double: two; field 'tag' is not string: {\"k\":[1,true]}",
    ),
    (b'{"name": "a", "size": null}', "011"): None,  # null is a missing value, not a mismatch
    (b'{"name": "a", "size": "' + b"x" * 100 + b'"}', "010"): (
        "type_mismatch",
        "field 'size' is not double: " + "x" * 77 + "...",
    ),
    (b'{"name": "a", "size": 1} trailing', "001"): (
        "trailing_data",
        'value has data after its JSON object: {"name": "a", "size": 1} trailing',
    ),
    (b'{"name": "a", "size": 1} , [1]', "001"): (
        "concatenated_objects",
        'value holds more than one JSON value: {"name": "a", "size": 1} , [1]',
    ),
    (b'{"a": [{"b": 1}, {"c": 2}]} x', "111"): (
        "trailing_data",
        'value has data after its JSON object: {"a": [{"b": 1}, {"c": 2}]} x',
    ),
    (b"[1, 2]", "111"): ("not_an_object", "value is JSON but not an object: [1, 2]"),
    (b"1, 2", "111"): ("not_an_object", "value is JSON but not an object: 1, 2"),
    (b'{"name": "a"', "111"): ("malformed_json", 'value is not valid JSON: {"name": "a"'),
    (b'{"name": 01}', "111"): ("malformed_json", 'value is not valid JSON: {"name": 01}'),
    (b"[[ [{[", "111"): (
        "too_deeply_nested",
        f"value nests arrays or objects more than {DEEP} levels deep",
    ),
    (b"[[[[1]]]]", "111"): ("not_an_object", "value is JSON but not an object: [[[[1]]]]"),
}


def test_each_rejected_value_gets_its_reason(spark: SparkSession) -> None:
    rows = [(i, value, untyped) for i, (value, untyped) in enumerate(REASONS)]
    frame = spark.createDataFrame(rows, "i int, value binary, untyped string")
    reason = json_reason(F.col("value"), F.col("untyped"), REASON_FIELDS, DEEP)
    got = {
        r.i: None if r.reason is None else (r.reason.kind, r.reason.detail)
        for r in frame.select("i", reason.alias("reason")).collect()
    }
    assert got == dict(enumerate(REASONS.values()))


def test_the_class_is_built_into_the_project_jars() -> None:
    jar = spark_jars_dir(Path(SPARK_JARS).resolve()) / OWN_JAR
    assert jar.is_file() and jar.stat().st_size > 0


def test_without_the_project_jar_the_error_says_how_to_ship_it(
    spark: SparkSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(json_shape_module, "_PACKAGE", "local.notshipped")
    with pytest.raises(JvmClassesMissingError, match="spark-submit --jars"):
        json_shape(F.col("value"), FIELDS)
    with pytest.raises(JvmClassesMissingError, match="JsonReason is not on Spark's classpath"):
        json_reason(F.col("value"), F.col("untyped"), REASON_FIELDS, DEEP)
