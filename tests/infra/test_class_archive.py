"""The driver JVM starts from the class archive ``scripts/setup`` writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from infra.class_archive import archive_java_options, class_archive_path
from tests.conftest import SPARK_JARS


def test_no_archive_adds_no_option(tmp_path: Path) -> None:
    assert archive_java_options(tmp_path / "missing.jsa") == ""


def test_the_archive_name_changes_with_the_java_it_was_written_by(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    current = class_archive_path(SPARK_JARS)
    fake_home = tmp_path / "jdk"
    (fake_home / "bin").mkdir(parents=True)
    (fake_home / "bin" / "java").write_text("another java\n")
    monkeypatch.setenv("JAVA_HOME", str(fake_home))
    assert class_archive_path(SPARK_JARS) != current
    assert class_archive_path(SPARK_JARS).parent == current.parent


def _vm_option(spark: SparkSession, name: str) -> str:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    diagnostics = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(
        jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean")
    )
    return str(diagnostics.getVMOption(name).getValue())


def test_the_test_session_driver_maps_the_archive(spark: SparkSession) -> None:
    archive = class_archive_path(SPARK_JARS)
    assert archive.is_file(), "scripts/setup writes it"
    assert _vm_option(spark, "SharedArchiveFile") == str(archive)
    # The JVM turns sharing off when it cannot map an archive.
    assert _vm_option(spark, "UseSharedSpaces") == "true"


def test_the_driver_runs_the_serial_collector_with_the_archive(spark: SparkSession) -> None:
    # The archive was written by a JVM with the same options; the collector keeps the
    # process tree's memory down (infra.spark.DRIVER_JAVA_OPTIONS).
    assert _vm_option(spark, "UseSerialGC") == "true"
    assert _vm_option(spark, "UseG1GC") == "false"
