"""The ``labelwise`` command: a thin shell over the Python API.

Each subcommand lives in ``labelwise/commands/<name>.py`` with ``add_parser(subparsers)``
and ``run(args) -> int``. Command modules import only light modules at the top and load
frameworks (Keras, TensorFlow, matplotlib) inside ``run``, so ``labelwise inspect`` and
``labelwise evaluate`` start fast. Nothing in the core imports this module.
"""

from __future__ import annotations

import argparse
import importlib
import re
import shutil
import sys
import textwrap
from typing import Sequence

from .. import __version__
from ..errors import LabelwiseError

# The commands by pipeline stage, in the order --help lists them.
STAGES = (
    ("your labels", ("inspect", "split")),
    ("train", ("train", "shard")),
    ("decide and evaluate", ("calibrate", "thresholds", "evaluate")),
    ("use a model", ("predict", "explain", "serve")),
    ("try it", ("demo",)),
)
COMMANDS = tuple(name for _, names in STAGES for name in names)

# reST roles and literals of the module docstrings the command descriptions come from.
_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|obj|exc|ref|doc):`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def plain(text: str | None) -> str | None:
    """Help text without reST markup: ``x`` and :class:`x` become x, a closing :: becomes :."""
    if not text:
        return text
    text = _ROLE.sub(r"\1", text)
    text = _LITERAL.sub(r"\1", text)
    return re.sub(r"(?<=\S)::(?=\s*$)", ":", text, flags=re.M).replace(" ::\n", "\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Description paragraphs wrapped to the terminal, indented lines (examples) kept as written;
    each option's help ends with its default, unless the help already states it or there is
    none to state (None, a flag that is off)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out = []
        for para in re.split(r"\n\s*\n", text.strip("\n")):
            if any(line[:1].isspace() for line in para.splitlines()):
                out.append(para)
            else:
                out.append(textwrap.fill(" ".join(para.split()), width, initial_indent=indent,
                                         subsequent_indent=indent, break_on_hyphens=False))
        return "\n\n".join(out)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (not action.option_strings or "default" in text or "%(default)" in text or default is None
                or default is argparse.SUPPRESS or isinstance(default, bool) or action.nargs == 0):
            return text
        shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default {shown})"


class _Parser(argparse.ArgumentParser):
    """The top-level parser: lists the commands grouped by pipeline stage."""

    def format_help(self) -> str:
        sub = next(a for a in self._actions if isinstance(a, argparse._SubParsersAction))
        helps = {a.dest: a.help or "" for a in sub._choices_actions}
        width = max(60, min(shutil.get_terminal_size().columns, 100) - 2)

        def entry(name: str) -> list[str]:
            return textwrap.wrap(helps.get(name, ""), width, initial_indent=f"  {name:<11} ",
                                 subsequent_indent=" " * 14, break_on_hyphens=False) or [f"  {name}"]

        lines = [self.format_usage().rstrip(), "", *textwrap.wrap(self.description, width), ""]
        listed = set()
        for stage, names in STAGES:
            present = [n for n in names if n in sub.choices]
            if present:
                lines.append(f"{stage}:")
                lines += [ln for n in present for ln in entry(n)]
                listed.update(present)
        others = [n for n in sub.choices if n not in listed]
        if others:
            lines.append("other:")
            lines += [ln for n in others for ln in entry(n)]
        lines += ["", "options:", "  -h, --help  show this help message and exit",
                  "  --version   show the version and exit", "",
                  "Run labelwise COMMAND --help for a command's options."]
        return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available subcommand registered."""
    parser = _Parser(
        prog="labelwise",
        description="Multi-label image classification: look at the labels, split, train, calibrate and decide, "
                    "evaluate, predict, explain, serve.",
    )
    parser.add_argument("--version", action="version", version=f"labelwise {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=argparse.ArgumentParser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"labelwise.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"labelwise.commands.{name}":
                continue
            raise
        module.add_parser(sub)
    for action in sub._choices_actions:
        action.help = plain(action.help)
    for command in sub.choices.values():
        command.formatter_class = HelpFormatter
        command.description = plain(command.description)
        for action in command._actions:
            action.help = plain(action.help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 failed check, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from .noise import plain_warnings, quiet_native_logs

    verbose = getattr(args, "verbose", None)
    try:
        with quiet_native_logs(None if verbose is None else _int_or_none(verbose), args.command), \
                plain_warnings(args.command):
            return int(args.func(args) or 0)
    except LabelwiseError as e:
        print(f"labelwise {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in ("tensorflow", "jax", "jaxlib", "torch"):
            raise
        # Keras' backend (KERAS_BACKEND) or a TensorFlow-only part asked for a framework that is not installed
        if e.name.split(".")[0] == "tensorflow":
            why = ("tensorflow is not installed, and this needs it (TFRecord shards, tf.distribute, or "
                   "KERAS_BACKEND=tensorflow): install tensorflow, or set KERAS_BACKEND=jax or torch and use the "
                   "Python pipeline")
        else:
            why = (f"{e.name.split('.')[0]} is not installed; install it, or set KERAS_BACKEND to an installed "
                   "backend (tensorflow, jax or torch)")
        print(f"labelwise {args.command}: error: {why}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"labelwise {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `labelwise inspect ... | head` closed our stdout early: not an error worth a traceback.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        # Writers go through io.atomic_path, which words its own errors; this catches the rest
        # (a folder made by a command, a file opened directly) so the user still gets one line.
        place = f"{e.filename}: " if e.filename else ""
        print(f"labelwise {args.command}: error: {place}{e.strerror or e}; check the path "
              "(for an output, choose another one)", file=sys.stderr)
        return 2


def _int_or_none(v) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
