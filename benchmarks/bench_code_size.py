"""How much code reads the inputs: tables, ids, splits and score files, against a reference revision.

    python benchmarks/bench_code_size.py [--base REV]

Counts, for each file, its lines and its code lines (not blank, not a comment, not a docstring)
in the working tree and at ``--base`` (a git revision of this repository; default ``add5608``,
``main`` when the label tables, ids and splits were read by many readers), and prints a table with
the ratio now / base. Two sets:

* **reading modules**: the files whose only job is reading inputs (``labels/tables.py`` and the
  modules under it, ``labels/scores.py``, ``evaluation/inputs.py``, ``commands/tableargs.py``);
* **every file that reads inputs**: those plus each command, the training data loaders, the
  stack and case readers, ``predict``'s input reader and the split module, whole (they hold
  other code too, so their count moves with unrelated work as well).

``--smoke`` compares the working tree with itself (no git history needed).
"""

from __future__ import annotations

import argparse
import ast
import io
import subprocess
import tokenize
from pathlib import Path

from _smoke import add_smoke, parse

ROOT = Path(__file__).resolve().parents[1]
PKG = "src/labelwise/"

READING_MODULES = ["labels/tables.py", "labels/csvread.py", "labels/cells.py", "labels/paths.py", "labels/ids.py",
                   "labels/spec.py", "labels/scores.py", "evaluation/inputs.py", "commands/tableargs.py"]
OTHER_READERS = ["labels/split.py", "data/stacks.py", "data/cases.py", "data/sources.py", "training/data.py",
                 "training/cases.py", "training/predict.py", "training/config.py", *(
                     f"commands/{c}.py" for c in ("calibrate", "thresholds", "evaluate", "split", "shard", "inspect",
                                                  "explain", "predict", "train"))]


def code_lines(source: str) -> int:
    """Lines holding a token that is not a comment, a line break or part of a docstring."""
    tree = ast.parse(source)
    doc: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                doc.update(range(first.lineno, first.end_lineno + 1))
    skip = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in skip:
            lines.update(n for n in range(tok.start[0], tok.end[0] + 1) if n not in doc)
    return len(lines)


def text_at(path: str, rev: str | None) -> str:
    """The file's text in the working tree (``rev`` None) or at git revision ``rev`` ("" when absent there)."""
    if rev is None:
        p = ROOT / path
        return p.read_text(encoding="utf-8") if p.exists() else ""
    done = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else ""


def measure(files: list[str], rev: str | None) -> dict[str, tuple[int, int]]:
    """``{file: (lines, code lines)}``."""
    out = {}
    for f in files:
        text = text_at(PKG + f, rev)
        out[f] = (text.count("\n"), code_lines(text) if text else 0)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="add5608", help="git revision to compare with (default add5608)")
    ap.add_argument("--files", action="store_true", help="also print one row per file")
    add_smoke(ap)
    args = parse(ap, argv)
    base_rev = None if args.smoke else args.base
    rows = []
    for name, files in (("reading modules", READING_MODULES),
                        ("every file that reads inputs", READING_MODULES + OTHER_READERS)):
        then, now = measure(files, base_rev), measure(files, None)
        per_file = [(f, then[f], now[f]) for f in files] if args.files and name != "reading modules" else []
        for f, a, b in per_file:
            rows.append((f, a, b))
        rows.append((f"**{name}** ({len(files)} files)", tuple(sum(v[k] for v in then.values()) for k in (0, 1)),
                     tuple(sum(v[k] for v in now.values()) for k in (0, 1))))
    base = "this tree" if base_rev is None else base_rev
    print(f"| set | lines at {base} | lines now | code lines at {base} | code lines now | code now / {base} |")
    print("|---|---:|---:|---:|---:|---:|")
    for what, (l0, c0), (l1, c1) in rows:
        ratio = f"{c1 / c0:.2f}" if c0 else "new"
        print(f"| {what} | {l0:,} | {l1:,} | {c0:,} | {c1:,} | {ratio} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
