"""What a run records about the code and environment it ran with, and how two records differ."""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "CODE_ROOT",
    "LOCK_FILE",
    "TRACKED_DISTRIBUTIONS",
    "CodeVersion",
    "code_version",
    "environment_differences",
    "environment_tags",
    "file_sha256",
    "library_versions",
    "pinned_requirements",
]

# The code version is the git commit of the code that runs: the folder this package was imported
# from (a checkout), and the lock file beside it. An installed wheel has neither: "unknown".
CODE_ROOT: Final = Path(__file__).resolve().parent.parent
LOCK_FILE: Final = CODE_ROOT / "uv.lock"
TRACKED_DISTRIBUTIONS: Final = (
    "pyspark",
    "delta-spark",
    "mlflow",
    "scikit-learn",
    "pandas",
    "numpy",
    "pyarrow",
    "joblibspark",
)
_TAG_PREFIX: Final = "lineage."


@dataclass(frozen=True)
class CodeVersion:
    """The git commit the code came from, and its uncommitted changes.

    Attributes:
        commit: ``git rev-parse HEAD``, or ``unknown``.
        dirty: Whether tracked files differ from the commit.
        model_code_diff_sha256: Hash of ``git diff HEAD -- models/`` (empty diff: ``clean``),
            so that uncommitted edits to the model code show up as a difference.
    """

    commit: str
    dirty: bool
    model_code_diff_sha256: str = "clean"


def code_version(repo_dir: Path = CODE_ROOT) -> CodeVersion:
    """Read the git commit of ``repo_dir``.

    Returns:
        The commit and dirty flag; commit ``unknown`` when git or the repository is missing.
    """

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=repo_dir, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        status = git("status", "--porcelain", "--untracked-files=no")
        diff = git("diff", "HEAD", "--", "models")
    except (OSError, subprocess.CalledProcessError):
        return CodeVersion(commit="unknown", dirty=False, model_code_diff_sha256="unknown")
    return CodeVersion(
        commit=commit or "unknown",
        dirty=bool(status),
        model_code_diff_sha256=hashlib.sha256(diff.encode()).hexdigest() if diff else "clean",
    )


def library_versions(distributions: Sequence[str] = TRACKED_DISTRIBUTIONS) -> dict[str, str]:
    """Installed versions of the libraries that decide a model's numbers, plus Python's.

    Returns:
        ``{"python": "3.11.x", "pyspark": "4.2.0", ...}``; ``missing`` for absent packages.
    """
    versions = {"python": platform.python_version()}
    for name in distributions:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def pinned_requirements(*distributions: str) -> list[str]:
    """``name==version`` of installed distributions, for an MLflow model's requirements.

    Giving them explicitly spares MLflow from re-loading the model in a subprocess to guess.
    """
    return [f"{name}=={importlib.metadata.version(name)}" for name in distributions]


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, or ``missing`` when it does not exist."""
    if not path.is_file():
        return "missing"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def environment_tags(
    code: CodeVersion, versions: Mapping[str, str], lock_sha256: str
) -> dict[str, str]:
    """MLflow tags recording code and environment (see :func:`environment_differences`)."""
    tags = {
        f"{_TAG_PREFIX}git_commit": code.commit,
        f"{_TAG_PREFIX}git_dirty": str(code.dirty).lower(),
        f"{_TAG_PREFIX}model_code_diff_sha256": code.model_code_diff_sha256,
        f"{_TAG_PREFIX}uv_lock_sha256": lock_sha256,
        # MLflow's own tag, so the UI shows the commit too.
        "mlflow.source.git.commit": code.commit,
    }
    tags.update({f"{_TAG_PREFIX}version.{name}": v for name, v in versions.items()})
    return tags


def environment_differences(recorded: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """Describe how the code and environment now differ from a run's record.

    Args:
        recorded: The run's tags.
        current: Tags built now with :func:`environment_tags`.

    Returns:
        One sentence per difference, e.g. ``library pyspark: 4.1.0 -> 4.2.0``; empty when
        nothing differs.
    """
    differences = []
    for key in sorted(k for k in current if k.startswith(_TAG_PREFIX)):
        before, now = recorded.get(key, "not recorded"), current[key]
        if before == now:
            continue
        name = key.removeprefix(_TAG_PREFIX)
        if name.startswith("version."):
            differences.append(f"library {name.removeprefix('version.')}: {before} -> {now}")
        elif name == "git_commit":
            differences.append(f"code version (git commit): {before} -> {now}")
        elif name == "git_dirty":
            differences.append(f"uncommitted code changes: {before} -> {now}")
        elif name == "model_code_diff_sha256":
            differences.append(f"uncommitted changes under models/: {before[:12]} -> {now[:12]}")
        elif name == "uv_lock_sha256":
            differences.append(f"lock file uv.lock changed: {before[:12]} -> {now[:12]}")
        else:
            differences.append(f"{name}: {before} -> {now}")
    return differences
