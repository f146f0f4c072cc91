"""The package layout's rules (docs/architecture.md), checked on the source text.

The imports of every module under ``src/labelwise`` are read with ``ast`` -- nothing is
imported -- including imports inside functions (they run sooner or later) but not those under
``if TYPE_CHECKING:`` (they never run). The test fails on an import circle, on a numpy-core
module that reaches Keras, TensorFlow, JAX or PyTorch (directly or through another labelwise
module), on an import of the CLI from outside ``commands/``, on an import that goes against the
pipeline's order (e.g. ``labels`` importing ``training``), and on a module over 600 lines or more
than 6 modules at the top level.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "labelwise"
FRAMEWORKS = {"keras", "tensorflow", "jax", "jaxlib", "torch", "flax", "tf_keras"}
CORE = ("errors", "io", "labels", "metrics", "decide", "evaluation")
# Which parts each part may import (besides itself); "root" is ``labelwise/__init__``. The order is
# the pipeline's: ground -> metrics (pure functions) -> labels -> decide -> evaluation; the Keras blocks and the data
# pipelines use labels; training binds them all; the wings (explain, callbacks, serve) sit on top;
# commands (the CLI) may use anything and nothing may use them.
ALLOWED = {
    "root": {"errors", "io", "labels"},
    "errors": set(),
    "io": {"errors"},
    "metrics": {"errors", "io"},
    "labels": {"errors", "io", "metrics"},
    "decide": {"errors", "io", "labels", "metrics"},
    "evaluation": {"errors", "io", "labels", "metrics", "decide"},
    "blocks": {"root", "errors", "io", "labels", "metrics", "decide"},
    "data": {"errors", "io", "labels"},
    "training": {"root", "errors", "io", "labels", "metrics", "decide", "evaluation", "blocks", "data"},
    "callbacks": {"root", "errors", "io", "labels", "metrics", "decide", "evaluation", "blocks"},
    "explain": {"root", "errors", "io", "labels", "metrics", "decide", "evaluation", "blocks", "data", "training"},
    "serve": {"root", "errors", "io", "labels", "metrics", "decide", "evaluation", "blocks", "data", "training",
              "explain"},
    "commands": None,  # anything
    "__main__": {"commands"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


MODULES = {_module_name(p): p for p in PKG.rglob("*.py")}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def _imports(name: str, path: Path) -> set[str]:
    """Absolute names of every module ``name`` imports (labelwise ones resolved to files)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _type_checking_nodes(tree)
    package = name if _is_package(path) else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = {f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES}
            out.update(subs)  # `from . import artifact`: the submodule itself
            if len(subs) < len(node.names):  # names defined in the module (or package) itself
                out.add(target)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _part(module: str) -> str:
    parts = module.split(".")
    return "root" if len(parts) == 1 else parts[1]


def _internal(targets) -> set[str]:
    return {t for t in targets if t in MODULES}


def test_the_walk_sees_the_package():
    # guards the test itself: a broken walk would pass every rule below
    assert len(MODULES) > 40
    assert "labelwise.labels.schema" in GRAPH["labelwise.labels.tables"]
    assert "keras" in GRAPH["labelwise.blocks.layers"]
    assert "labelwise.training.artifact" in GRAPH["labelwise.training.finish"]  # `from . import artifact`


def test_no_import_circle():
    # Tarjan's strongly connected components over the labelwise-internal graph
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in _internal(GRAPH[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(comp)

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    circles = [sorted(c) for c in comps if len(c) > 1 or c[0] in _internal(GRAPH[c[0]])]
    assert not circles, f"import circles: {circles}"


def _closure(start: str) -> dict[str, str]:
    """Every module ``start`` reaches, internal or external, each with one module that imports it."""
    seen: dict[str, str] = {}
    todo = [start]
    while todo:
        v = todo.pop()
        for w in GRAPH.get(v, ()):
            if w not in seen:
                seen[w] = v
                if w in GRAPH:
                    todo.append(w)
    return seen


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _part(m) in CORE))
def test_numpy_core_never_reaches_a_framework(module):
    reached = _closure(module)
    bad = {w: via for w, via in reached.items() if w.split(".")[0] in FRAMEWORKS}
    assert not bad, f"{module} reaches {sorted(bad)} (imported by {sorted(set(bad.values()))})"
    outside = {w for w in reached if w in MODULES and _part(w) not in CORE}
    assert not outside, f"{module} reaches {sorted(outside)}, outside the numpy core"


def test_nothing_imports_the_cli_from_outside():
    bad = {m: sorted(t for t in _internal(GRAPH[m]) if _part(t) == "commands")
           for m in MODULES if _part(m) not in ("commands", "__main__")}
    bad = {m: t for m, t in bad.items() if t}
    assert not bad, f"modules outside commands/ import the CLI: {bad}"


def test_imports_follow_the_pipeline_order():
    bad = []
    for m in MODULES:
        allowed = ALLOWED.get(_part(m), "unknown")
        if allowed == "unknown":
            bad.append(f"{m}: its folder has no row in ALLOWED (add it, and to docs/architecture.md)")
            continue
        if allowed is None:
            continue
        for t in sorted(_internal(GRAPH[m])):
            if _part(t) != _part(m) and _part(t) not in allowed:
                bad.append(f"{m} imports {t}")
    assert not bad, "imports against docs/architecture.md:\n" + "\n".join(bad)


def test_small_modules_and_a_small_top_level():
    top = sorted(p.name for p in PKG.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert len(top) <= 6, f"{len(top)} modules at the top level: {top}"
    long = {str(p.relative_to(PKG)): n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > 600}
    assert not long, f"modules over 600 lines: {long}"


def _csv_reads(tree: ast.AST) -> list[int]:
    """Lines of ``pd.read_csv(...)`` / ``pandas.read_csv(...)`` / bare ``read_csv`` imported from pandas."""
    from_pandas = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                   and (n.module or "").startswith("pandas") for a in n.names}
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr == "read_csv" and isinstance(f.value, ast.Name) \
                and f.value.id in ("pd", "pandas"):
            out.append(node.lineno)
        elif isinstance(f, ast.Name) and f.id == "read_csv" and "read_csv" in from_pandas:
            out.append(node.lineno)
    return out


def test_every_csv_is_read_through_csvread():
    bad = {m: lines for m, p in MODULES.items() if m != "labelwise.labels.csvread"
           and (lines := _csv_reads(ast.parse(p.read_text())))}
    assert not bad, f"pandas.read_csv outside labelwise.labels.csvread (use csvread.read_csv): {bad}"


def test_the_csv_rule_catches_a_pandas_read():
    assert _csv_reads(ast.parse("import pandas as pd\nx = pd.read_csv('t.csv')\n")) == [2]
    assert _csv_reads(ast.parse("from pandas import read_csv\nx = read_csv('t.csv')\n")) == [2]
    assert _csv_reads(ast.parse("from .csvread import read_csv\nx = read_csv('t.csv')\n")) == []


# Functions that turn probabilities into decisions, or scores into calibrated probabilities. Outside
# decide/ they are reached only through DecisionPolicy (apply / decide / probabilities), so every
# surface (predict, serve, explain, train, evaluate) shows the numbers of one road.
DECIDING = {"decide", "apply_rule", "apply_bounds", "instance_f1_decisions", "_apply_independent"}
DECIDING_MODULES = {"labelwise.decide", "labelwise.decide.thresholds", "labelwise.decide.rules",
                    "labelwise.decide.calibration"}


def _resolve(name: str, path: Path, node: ast.ImportFrom) -> str:
    package = name if _is_package(path) else name.rsplit(".", 1)[0]
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _own_decisions(name: str, path: Path) -> list[str]:
    """Places in module ``name`` that decide or calibrate without a DecisionPolicy."""
    tree = ast.parse(path.read_text(), filename=str(path))
    aliases: dict[str, str] = {}  # local name -> a deciding module
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _resolve(name, path, node)
            for a in node.names:
                if target in DECIDING_MODULES and a.name in DECIDING:
                    bad.append(f"{name}:{node.lineno} imports {a.name} from {target}")
                if f"{target}.{a.name}" in DECIDING_MODULES:
                    aliases[a.asname or a.name] = f"{target}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name in DECIDING_MODULES and a.asname:
                    aliases[a.asname] = a.name
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        owner = ast.unparse(node.value)
        if node.attr in DECIDING and (owner in aliases or owner in DECIDING_MODULES):
            bad.append(f"{name}:{node.lineno} calls {owner}.{node.attr}")
        if node.attr == "apply" and any(w in owner.lower().split(".")[-1] for w in ("cal", "calibration")):
            bad.append(f"{name}:{node.lineno} applies a calibration itself ({owner}.apply)")
    return bad


def test_only_decide_turns_scores_into_probabilities_and_decisions():
    bad = []
    for m, path in MODULES.items():
        if _part(m) == "decide":
            continue
        bad += _own_decisions(m, path)
    assert not bad, ("outside decide/, decide or calibrate through DecisionPolicy.apply:\n" + "\n".join(bad))


def test_the_decision_rule_sees_a_direct_call(tmp_path):
    # guards the rule above: the three ways a module could decide on its own are all caught
    code = ("from ..decide import thresholds as T\nfrom ..decide.rules import apply_rule\n"
            "def f(s, cal):\n    T.decide(s)\n    return cal.apply(s)\n")
    path = tmp_path / "x.py"
    path.write_text(code)
    found = _own_decisions("labelwise.evaluation.x", path)
    assert len(found) == 3, found
