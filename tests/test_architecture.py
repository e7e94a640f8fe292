"""The layout's rules, read from the source: no import cycles, packages depend one way only.

Every import counts, also those inside functions: a cycle hidden in a function body is still a
cycle a reader has to untangle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("infra", "streaming", "models", "demo", "benchmarks")
# Pure DataFrame steps: nothing here may talk to Kafka, Delta or MLflow.
PURE_MODULES = (
    "streaming.parse.events",
    "streaming.sink.realtime_topics",
    "streaming.sink.tables",
    "streaming.sink.topics",
    "streaming.score.identity",
)
IO_LIBRARIES = ("mlflow", "kafka", "delta", "deltalake", "py4j")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _imports(module: str, path: Path) -> set[str]:
    """Every module name ``module`` imports, anywhere in its body."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _graph(group: callable) -> dict[str, set[str]]:  # type: ignore[valid-type]
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        source = group(module)
        targets = {group(name) for name in _imports(module, path) if name in modules}
        graph.setdefault(source, set()).update(t for t in targets if t != source)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _folder(module: str) -> str:
    """``streaming.query.service`` -> ``streaming.query``; top modules stay themselves."""
    parts = module.split(".")
    return ".".join(parts[:2])


def test_no_import_cycle_between_modules() -> None:
    assert _cycles(_graph(lambda m: m)) == []


def test_no_import_cycle_between_the_stage_folders() -> None:
    assert _cycles(_graph(_folder)) == []


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("infra", ("streaming", "models", "demo")),
        ("streaming", ("models", "demo", "benchmarks")),
        ("models", ("streaming", "demo", "benchmarks")),
    ],
)
def test_packages_depend_one_way(package: str, forbidden: Iterable[str]) -> None:
    offending = {
        f"{module} imports {name}"
        for module, path in _modules().items()
        if module.split(".")[0] == package
        for name in _imports(module, path)
        if name.split(".")[0] in forbidden
    }
    assert offending == set()


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_steps_do_no_io(module: str) -> None:
    path = _modules()[module]
    assert {n for n in _imports(module, path) if n.split(".")[0] in IO_LIBRARIES} == set()


def test_the_check_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_package_folder_is_a_regular_package() -> None:
    """Namespace packages do not import from a zip (spark-submit's --py-files)."""
    folders = {path.parent for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    assert (
        sorted(str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").exists()) == []
    )
