"""A class-data-sharing archive of the driver JVM's classes, so that Spark starts faster.

A local Spark driver loads and verifies some twenty thousand classes (Spark SQL, Delta, MLlib,
the Kafka source) before its first micro-batch, and does it again at every start. The JVM can
instead map them, already parsed and verified, from an archive written once (CDS, JDK 13+).
``python -m infra.class_archive`` (run by ``scripts/setup``) starts a driver that writes the
archive when it exits, after a short workload that loads what the commands load: a Delta table
written, read and its history listed, a streaming query with ``foreachBatch``, JSON parsed, an
MLlib pipeline like the project's fitted, saved and loaded.

Sessions built by :func:`infra.spark.build_spark_session` on a local master use the archive when
it exists. It is tied to the JVM and the jars it was written with (its name holds both); a JVM
that cannot use it (another Java build, changed jars) starts as before, only slower.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from infra.errors import ProjectError
from infra.jvm_packages import spark_jars_dir
from infra.paths import ProjectHome

__all__ = ["ClassArchiveError", "archive_java_options", "class_archive_path", "write_class_archive"]

# CDS reports each class it cannot archive or a JVM that cannot use the archive: neither is an
# error here, and neither belongs in a user's terminal.
_QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"


class ClassArchiveError(ProjectError):
    """The archive could not be written."""


def _java_identity() -> str:
    """The java binary PySpark starts (``JAVA_HOME`` first, as PySpark does), by its real path,
    size and time: a Java update changes it."""
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if found is None:
        return "no java"
    real = Path(found).resolve()
    stat = real.stat()
    return f"{real}:{stat.st_size}:{stat.st_mtime_ns}"


# The workload takes about a minute; a hung one must not hang the setup.
_WORKLOAD_TIMEOUT_S = 600


def class_archive_path(jars_cache: Path) -> Path:
    """Where the archive for this JVM and these jars lives (under the jars' own folder)."""
    import pyspark

    digest = hashlib.sha256(f"{_java_identity()}\n{pyspark.__version__}".encode()).hexdigest()[:12]
    return spark_jars_dir(jars_cache) / f"driver-classes-{digest}.jsa"


def archive_java_options(archive: Path) -> str:
    """JVM options that use ``archive``; empty when it does not exist."""
    if not archive.is_file():
        return ""
    return f"-XX:SharedArchiveFile={archive} {_QUIET}"


def write_class_archive(jars_cache: Path) -> Path:
    """Write the archive unless it exists; returns its path.

    The driver writes it as its JVM exits, so the workload runs in a child process that waits
    for its JVM to end.

    Raises:
        ClassArchiveError: the workload or the JVM failed.
    """
    target = class_archive_path(jars_cache)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_suffix(".staging")
    staging.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="class-archive-") as work:
        try:
            result = subprocess.run(
                [sys.executable, "-m", "infra.class_archive_workload", str(jars_cache),
                 str(staging)],
                cwd=work,
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": _pythonpath()},
                timeout=_WORKLOAD_TIMEOUT_S,
            )  # fmt: skip
        except subprocess.TimeoutExpired as e:
            staging.unlink(missing_ok=True)
            raise ClassArchiveError(
                f"could not write the JVM class archive: its workload ran over "
                f"{_WORKLOAD_TIMEOUT_S} s"
            ) from e
    if result.returncode != 0 or not staging.is_file():
        staging.unlink(missing_ok=True)
        detail = (result.stdout + result.stderr).strip().splitlines()[-3:]
        raise ClassArchiveError(f"could not write the JVM class archive: {' | '.join(detail)}")
    staging.rename(target)
    return target


def _pythonpath() -> str:
    """This checkout first: the workload runs in a scratch folder."""
    root = str(Path(__file__).resolve().parent.parent)
    return os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)


def main() -> None:
    """Write the archive for the project's jars (``scripts/setup``); print its path."""
    try:
        print(write_class_archive(ProjectHome.from_environment(os.environ).spark_jars))
    except ProjectError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
