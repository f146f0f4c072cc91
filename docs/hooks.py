"""MkDocs hook: the command-line reference is generated from labelwise's argparse parsers at
build time, so it always lists the commands and options that exist (nothing is copied by hand).

A page holding the line ``<!-- cli-reference -->`` gets, in its place, ``labelwise --help`` and
every ``labelwise COMMAND --help`` as text blocks, one section per command in pipeline order.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

MARKER = "<!-- cli-reference -->"


def cli_reference() -> str:
    """Markdown: the top-level help, then a section per command with its --help text."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    if src not in sys.path:
        sys.path.insert(0, src)
    import argparse

    from labelwise.commands.cli import STAGES, build_parser

    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal: fix the width for the page
    try:
        parser = build_parser()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parts = ["```text", parser.format_help().rstrip(), "```", ""]
        names = [n for _, group in STAGES for n in group if n in sub.choices]
        names += [n for n in sub.choices if n not in names]
        for name in names:
            parts += [f"## labelwise {name}", "", "```text", sub.choices[name].format_help().rstrip(), "```", ""]
    finally:
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 - MkDocs hook signature
    if MARKER in markdown:
        return markdown.replace(MARKER, cli_reference())
    return markdown
