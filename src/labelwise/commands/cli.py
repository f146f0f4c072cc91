"""The ``labelwise`` command: a thin shell over the Python API.

Each subcommand lives in ``labelwise/commands/<name>.py`` with ``add_parser(subparsers)``
and ``run(args) -> int``. Command modules import only light modules at the top and load
frameworks (Keras, TensorFlow, matplotlib) inside ``run``, so ``labelwise inspect`` and
``labelwise evaluate`` start fast. Nothing in the core imports this module.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from .. import __version__
from ..errors import LabelwiseError

# Order shown in --help: the pipeline, then serving and scale-out.
COMMANDS = ("inspect", "split", "calibrate", "thresholds", "evaluate", "train", "predict", "explain", "serve", "demo",
            "shard")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="labelwise",
        description="Multi-label image classification: inspect, split, train, decide, evaluate, predict.",
    )
    parser.add_argument("--version", action="version", version=f"labelwise {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"labelwise.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"labelwise.commands.{name}":
                continue
            raise
        module.add_parser(sub)
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
