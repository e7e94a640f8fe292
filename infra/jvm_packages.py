"""The JVM packages Spark needs beyond pyspark's own jars (Kafka source, Delta), and the
project's own JVM classes.

The packages are declared, pinned, in ``infra/spark-packages/pom.xml`` (shipped with the code)
and resolved once with Maven into a cache under the project home (``.cache/spark-jars``).
Jars whose artifact pyspark already ships are dropped, so that
the Spark distribution's own (newer) versions are the only ones on the classpath. The Java
sources under ``infra/spark-packages/java`` (Spark functions that are cheaper in the JVM than
as expressions, see :mod:`infra.json_shape`) are compiled there too, against pyspark's jars,
into ``streaming-inference-jvm.jar``.

Run ``python -m infra.jvm_packages`` to resolve and print the comma-separated jar list
(used by ``spark-submit.sh`` and ``scripts/setup``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from infra.errors import ProjectError
from infra.paths import ProjectHome

__all__ = ["POM", "JvmPackagesError", "resolve_spark_jars", "spark_jars_dir"]

# Package data: the pom and the Java sources travel with the code (in the wheel too).
POM = Path(__file__).resolve().parent / "spark-packages" / "pom.xml"
JAVA_SOURCES = POM.parent / "java"
OWN_JAR = "streaming-inference-jvm.jar"


class JvmPackagesError(ProjectError):
    """Maven is missing or cannot resolve the pinned JVM packages."""


_VERSION_SUFFIX = re.compile(r"-\d[\w.+-]*\.jar$")


def _artifact_name(jar_name: str) -> str:
    return _VERSION_SUFFIX.sub("", jar_name)


def _pyspark_jars_dir() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent / "jars"


def spark_jars_dir(cache_root: Path) -> Path:
    """Folder under ``cache_root`` holding the resolved jars; its name changes with the pom and
    the Java sources."""
    digest = hashlib.sha256(POM.read_bytes())
    for source in _java_sources():
        digest.update(source.relative_to(JAVA_SOURCES).as_posix().encode())
        digest.update(source.read_bytes())
    return cache_root / digest.hexdigest()[:12]


def _java_sources() -> list[Path]:
    return sorted(JAVA_SOURCES.rglob("*.java"))


def resolve_spark_jars(cache_root: Path) -> list[Path]:
    """Resolve the pinned JVM packages once into ``cache_root`` and return their jar paths.

    Returns:
        The jars to add to Spark's classpath, sorted by name.

    Raises:
        JvmPackagesError: Maven is missing or cannot resolve the packages.
    """
    # Absolute: Maven would read a relative output folder from the pom's folder.
    target = spark_jars_dir(cache_root.resolve())
    marker = target / ".resolved"
    if not marker.exists():
        _download(target)
        marker.write_text("ok\n")
    return sorted(target.glob("*.jar"))


def _download(target: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise JvmPackagesError(
            "Maven ('mvn') is not on PATH: install it to resolve the Kafka and Delta jars"
        )
    staging = target.with_name(target.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        detail = (result.stdout + result.stderr).strip().splitlines()[-3:]
        raise JvmPackagesError(
            f"could not resolve the JVM packages in {POM} from Maven Central: {' | '.join(detail)}"
        )
    shipped = {_artifact_name(jar.name) for jar in _pyspark_jars_dir().glob("*.jar")}
    for jar in staging.glob("*.jar"):
        if _artifact_name(jar.name) in shipped:
            jar.unlink()
    _compile(staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def _compile(staging: Path) -> None:
    """Compile the project's Java sources into ``staging/OWN_JAR``, against pyspark's jars."""
    javac, jar = shutil.which("javac"), shutil.which("jar")
    if javac is None or jar is None:
        raise JvmPackagesError(
            "'javac' and 'jar' are not on PATH: install a JDK 17 (e.g. openjdk-17-jdk-headless) "
            "to build the project's JVM classes"
        )
    classes = staging / "classes"
    classpath = os.pathsep.join([str(_pyspark_jars_dir() / "*"), str(staging / "*")])
    for command in (
        [javac, "--release", "17", "-cp", classpath, "-d", str(classes),
         *map(str, _java_sources())],
        [jar, "--create", "--file", str(staging / OWN_JAR), "-C", str(classes), "."],
    ):  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            detail = (result.stdout + result.stderr).strip().splitlines()[-3:]
            raise JvmPackagesError(
                f"could not build the project's JVM classes ({Path(command[0]).name}): "
                + " | ".join(detail)
            )
    shutil.rmtree(classes)


def main() -> None:
    """Print the resolved jars as a comma-separated list (for ``--jars``)."""
    try:
        jars = resolve_spark_jars(ProjectHome.from_environment(os.environ).spark_jars)
    except JvmPackagesError as e:
        sys.exit(f"error: {e}")
    print(",".join(str(jar) for jar in jars))


if __name__ == "__main__":
    main()
