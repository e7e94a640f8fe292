"""The JVM packages Spark needs beyond pyspark's own jars (Kafka source, Delta).

They are declared, pinned, in ``jvm/spark-packages/pom.xml`` and resolved once with Maven
into a project-local cache. Jars whose artifact pyspark already ships are dropped, so that
the Spark distribution's own (newer) versions are the only ones on the classpath.

Run ``python -m streaming.jvm_packages`` to resolve and print the comma-separated jar list
(used by ``spark-submit.sh``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from streaming.errors import ConfigurationError

__all__ = ["POM", "PROJECT_ROOT", "resolve_spark_jars", "spark_jars_dir"]

# The checkout the code runs from. Under spark-submit the code may be imported from the shipped
# zip (--py-files), so spark-submit.sh names the checkout in STREAMING_HOME.
PROJECT_ROOT = Path(os.environ.get("STREAMING_HOME") or Path(__file__).resolve().parent.parent)
POM = PROJECT_ROOT / "jvm" / "spark-packages" / "pom.xml"
_VERSION_SUFFIX = re.compile(r"-\d[\w.+-]*\.jar$")


def _artifact_name(jar_name: str) -> str:
    return _VERSION_SUFFIX.sub("", jar_name)


def _pyspark_jars_dir() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent / "jars"


def spark_jars_dir(cache_root: Path | None = None) -> Path:
    """Folder holding the resolved jars; its name changes whenever the pom changes."""
    root = cache_root or PROJECT_ROOT / ".cache" / "spark-jars"
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    return root / digest


def resolve_spark_jars(cache_root: Path | None = None) -> list[Path]:
    """Resolve the pinned JVM packages once and return their jar paths.

    Returns:
        The jars to add to Spark's classpath, sorted by name.

    Raises:
        ConfigurationError: Maven is missing or cannot resolve the packages.
    """
    target = spark_jars_dir(cache_root)
    marker = target / ".resolved"
    if not marker.exists():
        _download(target)
        marker.write_text("ok\n")
    return sorted(target.glob("*.jar"))


def _download(target: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ConfigurationError(
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
        raise ConfigurationError(
            f"could not resolve the JVM packages in {POM} from Maven Central: {' | '.join(detail)}"
        )
    shipped = {_artifact_name(jar.name) for jar in _pyspark_jars_dir().glob("*.jar")}
    for jar in staging.glob("*.jar"):
        if _artifact_name(jar.name) in shipped:
            jar.unlink()
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def main() -> None:
    """Print the resolved jars as a comma-separated list (for ``--jars``)."""
    try:
        jars = resolve_spark_jars()
    except ConfigurationError as e:
        sys.exit(f"error: {e}")
    print(",".join(str(jar) for jar in jars))


if __name__ == "__main__":
    main()
