"""The documentation lives in the repository and says what the code does."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_the_cli_reference_matches_help() -> None:
    spec = importlib.util.spec_from_file_location(
        "cli_reference", ROOT / "scripts" / "cli_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = (ROOT / "docs" / "cli.md").read_text()
    assert written == module.reference(), (
        "docs/cli.md is stale: .venv/bin/python scripts/cli_reference.py > docs/cli.md"
    )


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_link_stays_inside_the_repository(document: Path) -> None:
    for target in _LINK.findall(document.read_text()):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # web links and anchors
        resolved = (document.parent / target.split("#")[0]).resolve()
        assert resolved.is_relative_to(ROOT), f"{document.name} links outside: {target}"
        assert resolved.exists(), f"{document.name} links to a missing file: {target}"


def test_the_error_catalogue_lists_every_hostile_case_with_its_decision() -> None:
    from tests.streaming.hostile import CASES

    rows = {
        cells[0]: cells
        for line in (ROOT / "docs" / "errors.md").read_text().splitlines()
        if line.startswith("| ")
        for cells in [[c.strip() for c in line.strip("|").split(" | ")]]
    }
    for case in CASES:
        assert case.name in rows, f"docs/errors.md lacks the case {case.name!r}"
        decision, kind = rows[case.name][2], rows[case.name][3]
        expected = (
            ("quarantined", f"`{case.kind}`")
            if case.kind
            else ("scored and flagged", f"`{case.flag}`")
            if case.flag
            else ("scored", "—")
        )
        assert (decision, kind) == expected, case.name
