"""``--smoke``: every benchmark's tiny mode, run by the slow test tier so a change that breaks a script fails CI.

``add_smoke(ap, n_train=200, ...)`` adds the flag; ``parse(ap)`` parses and, under ``--smoke``, replaces those
arguments with the tiny values (the figures it prints then only show that the script runs).
"""
from __future__ import annotations

import argparse


def add_smoke(ap: argparse.ArgumentParser, **tiny) -> None:
    """Add ``--smoke``; under it, each ``dest=value`` in ``tiny`` overrides the parsed argument."""
    shown = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in tiny.items())
    ap.add_argument("--smoke", action="store_true",
                    help=f"tiny settings that run in seconds, to check the script works ({shown or 'tiny data'})")
    ap.set_defaults(_smoke_values=tiny)


def parse(ap: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse ``argv``; under ``--smoke`` apply the tiny values given to :func:`add_smoke`."""
    args = ap.parse_args(argv)
    if getattr(args, "smoke", False):
        for key, value in args._smoke_values.items():
            setattr(args, key, value)
    return args
