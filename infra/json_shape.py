"""The top-level shape of JSON values, read in the JVM in one pass (``JsonShape.java``).

A Spark column function for the record judge (:mod:`streaming.parse.events`): whether a value
is one JSON object with nothing after it, whether a key is given twice, and how each expected
field is given (absent, ``null``, a string, another value). Worked out with Spark's own
expressions, that took a second JSON pass, regular expressions and substring searches per
field; here it is one pass of the JSON tokenizer. The class is compiled with the project's JVM
packages (:mod:`infra.jvm_packages`) and must be on Spark's classpath.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    "json_shape",
    "value_shape",
]

_CLASS = "local.streaminginference.JsonShape"

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


def json_shape(value: Column, fields: Sequence[str]) -> Column:
    """The shape of each JSON ``value`` (binary, UTF-8) against ``fields``, as a string: what
    the value is, then how each field is given (see the module's constants). Null for a null
    value.

    Raises:
        JvmClassesMissingError: the class is not on the classpath (a ``spark-submit`` without the
            project's jars).
    """
    sc = SparkContext._active_spark_context
    if sc is None:
        raise RuntimeError("json_shape needs an active SparkContext")
    jvm, gateway = sc._jvm, sc._gateway
    assert jvm is not None and gateway is not None
    if not jvm.org.apache.spark.util.Utils.classIsLoadable(_CLASS):
        raise JvmClassesMissingError(
            f"{_CLASS} is not on Spark's classpath: pass the jars that "
            "`python -m infra.jvm_packages` prints to spark-submit --jars (spark-submit.sh does)"
        )
    names = gateway.new_array(jvm.java.lang.String, len(fields))
    for i, name in enumerate(fields):
        names[i] = name
    return Column(jvm.local.streaminginference.JsonShape.column(names, value._jc))


def value_shape(shape: Column) -> Column:
    """What the value is: one of ``ONE_OBJECT``, ``REPEATED_KEY``, ``CONCATENATED``,
    ``NOT_AN_OBJECT``."""
    return shape.substr(1, 1)


def field_given(shape: Column, position: int) -> Column:
    """How the field at ``position`` (0-based, in the order given to ``json_shape``) is given:
    one of ``ABSENT``, ``NULL``, ``STRING``, ``OTHER_VALUE``."""
    return shape.substr(position + 2, 1)
