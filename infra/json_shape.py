"""The top-level shape of JSON values, and why a rejected one is rejected, read in the JVM in
one pass (``JsonShape.java``, ``JsonReason.java``).

Spark column functions for the record judge (:mod:`streaming.parse.events`). The shape: whether
a value is one JSON object with nothing after it, whether a key is given twice, and how each
expected field is given (absent, ``null``, a string, another value). Worked out with Spark's own
expressions, that took a second JSON pass, regular expressions and substring searches per
field; here it is one pass of the JSON tokenizer. The reason: what is wrong with a rejected
value's structure, keys or field types, with the detail a user reads; with Spark's own
expressions that took two more JSON passes and higher-order functions per field, whose plan
cost every batch its planning. The classes are compiled with the project's JVM packages
(:mod:`infra.jvm_packages`) and must be on Spark's classpath.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyspark import SparkContext
from pyspark.sql import Column

from infra.errors import ProjectError

__all__ = [
    "ABSENT",
    "CONCATENATED",
    "NOT_AN_OBJECT",
    "NULL",
    "ONE_OBJECT",
    "OTHER_VALUE",
    "REPEATED_KEY",
    "STRING",
    "JvmClassesMissingError",
    "field_given",
    "json_reason",
    "json_shape",
    "value_shape",
]

_PACKAGE = "local.streaminginference"

# What the value is (the shape's first character).
ONE_OBJECT = "o"  # one object, nothing after it, no key given twice
REPEATED_KEY = "d"  # one object, nothing after it, a key given twice
CONCATENATED = "t"  # a complete object, then something else
NOT_AN_OBJECT = "x"  # not JSON, cut short, empty, or another JSON value
# How a field is given (one character per field, in the order given to ``json_shape``).
ABSENT = "a"
NULL = "n"
STRING = "s"
OTHER_VALUE = "v"  # a number, boolean, NaN/Infinity, object or array


class JvmClassesMissingError(ProjectError):
    """The project's JVM classes are not on Spark's classpath."""


def _jvm_class(name: str) -> tuple[Any, Any]:
    """The project's JVM class ``name`` and the py4j gateway.

    Raises:
        JvmClassesMissingError: the classes are not on the classpath (a ``spark-submit``
            without the project's jars).
    """
    sc = SparkContext._active_spark_context
    if sc is None:
        raise RuntimeError("the project's JVM functions need an active SparkContext")
    jvm, gateway = sc._jvm, sc._gateway
    assert jvm is not None and gateway is not None
    full = f"{_PACKAGE}.{name}"
    if not jvm.org.apache.spark.util.Utils.classIsLoadable(full):
        raise JvmClassesMissingError(
            f"{full} is not on Spark's classpath: pass the jars that "
            "`python -m infra.jvm_packages` prints to spark-submit --jars (spark-submit.sh does)"
        )
    return getattr(jvm.local.streaminginference, name), gateway


def _array(gateway: Any, java_type: Any, values: Sequence[Any]) -> Any:
    array = gateway.new_array(java_type, len(values))
    for i, value in enumerate(values):
        array[i] = value
    return array


def json_shape(value: Column, fields: Sequence[str]) -> Column:
    """The shape of each JSON ``value`` (binary, UTF-8) against ``fields``, as a string: what
    the value is, then how each field is given (see the module's constants). Null for a null
    value.

    Raises:
        JvmClassesMissingError: the class is not on the classpath.
    """
    shape, gateway = _jvm_class("JsonShape")
    names = _array(gateway, gateway.jvm.java.lang.String, fields)
    return Column(shape.column(names, value._jc))


def json_reason(
    value: Column,
    untyped: Column,
    fields: Sequence[tuple[str, str, bool]],
    depth: int,
) -> Column:
    """Why each JSON ``value`` (binary, valid UTF-8, not empty) is rejected for its form, as
    ``struct<kind, detail>``, or null when its form is fine (see ``JsonReason.java``).

    Args:
        untyped: One character per field, ``1`` where the typed parse left it null.
        fields: Each field's name, its type as the detail names it, and whether it is required.
        depth: A value that is not JSON and opens this many arrays or objects in a row is too
            deeply nested.

    Raises:
        JvmClassesMissingError: the class is not on the classpath.
    """
    reason, gateway = _jvm_class("JsonReason")
    jvm = gateway.jvm
    names = _array(gateway, jvm.java.lang.String, [f[0] for f in fields])
    types = _array(gateway, jvm.java.lang.String, [f[1] for f in fields])
    required = _array(gateway, jvm.boolean, [f[2] for f in fields])
    return Column(reason.column(names, types, required, depth, value._jc, untyped._jc))


def value_shape(shape: Column) -> Column:
    """What the value is: one of ``ONE_OBJECT``, ``REPEATED_KEY``, ``CONCATENATED``,
    ``NOT_AN_OBJECT``."""
    return shape.substr(1, 1)


def field_given(shape: Column, position: int) -> Column:
    """How the field at ``position`` (0-based, in the order given to ``json_shape``) is given:
    one of ``ABSENT``, ``NULL``, ``STRING``, ``OTHER_VALUE``."""
    return shape.substr(position + 2, 1)
