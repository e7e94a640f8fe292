"""Print the command-line reference (docs/cli.md) from the parsers themselves.

    .venv/bin/python scripts/cli_reference.py > docs/cli.md

``tests/test_docs.py`` fails when docs/cli.md and ``--help`` disagree.
"""

from __future__ import annotations

import argparse
import os


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def reference() -> str:
    """The Markdown reference of ``python -m streaming`` and ``python -m models``."""
    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal; fix it for the file
    from models.cli import build_parser as models_parser
    from streaming.cli import build_parser as streaming_parser

    lines = [
        "# Command-line reference",
        "",
        "Generated from the parsers by `scripts/cli_reference.py`; `--help` prints the same.",
        "Every option also reads from the environment (the variable is named in its help) and",
        "from the TOML file given with `--config`; flags win over the environment, which wins",
        "over the file.",
        "",
    ]
    for package, build in (("streaming", streaming_parser), ("models", models_parser)):
        parser = build()
        lines += [
            f"## python -m {package}",
            "",
            "```text",
            parser.format_help().rstrip(),
            "```",
            "",
        ]
        for name, sub in _subcommands(parser).items():
            lines += [f"### python -m {package} {name}", "", "```text"]
            lines += [sub.format_help().rstrip(), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference(), end="")
