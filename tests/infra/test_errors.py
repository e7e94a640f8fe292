"""first_line: the one line a user sees of an error."""

from __future__ import annotations

from infra.errors import first_line

# What a model's predict raising in a Spark Python worker looks like once it reaches the driver.
WORKER_FAILURE = """
  An exception was thrown from the Python worker. Please see the stack trace below.
Traceback (most recent call last):
  File "/site-packages/pyspark/worker.py", line 2015, in main
    process()
  File "/models/broken.py", line 12, in predict
    raise ValueError("the model cannot score rooms of type 'Castle'")
ValueError: the model cannot score rooms of type 'Castle'

JVM stacktrace:
org.apache.spark.SparkException: Job aborted due to stage failure
\tat org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages(DAGScheduler.scala:2)
"""


def test_a_python_worker_failure_reads_as_what_the_code_raised() -> None:
    assert first_line(WORKER_FAILURE) == (
        "ValueError: the model cannot score rooms of type 'Castle'"
    )


def test_a_chained_traceback_reads_as_its_last_exception() -> None:
    text = (
        "Traceback (most recent call last):\n  File 'a.py', line 1\nKeyError: 'x'\n\n"
        "During handling of the above exception, another exception occurred:\n\n"
        "Traceback (most recent call last):\n  File 'b.py', line 2\nRuntimeError: wrapped\n"
    )
    assert first_line(text) == "RuntimeError: wrapped"


def test_a_java_error_reads_as_its_first_line() -> None:
    text = "org.apache.kafka.common.KafkaException: Failed to construct kafka consumer\n\tat x.y(Z)"
    assert first_line(text) == text.splitlines()[0]


def test_an_empty_message_reads_as_the_error_type() -> None:
    assert first_line(RuntimeError("")) == "RuntimeError"
    assert first_line("") == "unknown error"
    assert first_line("\n  \n") == "unknown error"
