"""Label structures beyond independent labels and exclusive groups: implications, derived
labels, at-most-one groups and unknown cells -- their checks and their numpy math.

This is the single place the structure is imposed on decisions (:func:`enforce`, called by
:func:`labelwise.decide.thresholds.decide`), so every decision rule built on top gets the same rules:

* **implies** (child -> parents): a decided child turns its parents on (transitively). The
  head guarantees the same for scores with the max-constraint of C-HMCNN (Giunchiglia &
  Lukasiewicz 2020): ``s'(parent) = max(s(parent), s(d) for every descendant d)``, so
  ``P(child) <= P(parent)`` holds by construction, and at one shared threshold the parent is on
  whenever the child is; with per-label thresholds :func:`enforce` closes the gap upwards.
* **derived** (``any_of``): a derived decision is the OR of its sources' decisions. Its score is
  ``1 - prod(1 - p_i)`` over independent sources (the noisy-OR: exact when the sources are
  independent events, as the sigmoids are read; the same reading gives the ``none`` score
  ``prod(1 - p_i)``) and ``sum p_i`` over members of one group (exact: the members are disjoint
  events of one softmax). Both are >= every source score, so the derived score never ranks below
  a source.
* **at_most_one**: at most one member is on; among members whose score reaches its threshold,
  only the highest-scored stays on (the softmax's arg-max, when it beats "absent").
* **unknown**: ``known`` masks beside ``y``; a group is known on a row when a member is 1 or all
  members are known; a derived label is known when a source is known 1 or all are known 0;
  ``none`` likewise over the independent labels; a known-1 child makes its parents known 1 and a
  known-0 parent makes its children known 0 (both noted by the table reader).

The schema checks of these sections live in :mod:`labelwise.labels.schema_rules`. numpy only; no Keras.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np


if TYPE_CHECKING:  # pragma: no cover
    from .schema import LabelSchema

__all__ = ["descendants", "derive_decisions", "derive_scores", "constrain_scores", "enforce", "violations",
           "violation_rate", "propagate_known", "apply_policy", "implication_tree", "UNKNOWN"]

#: How an unknown target cell is written in ``y_true`` for the losses (``model.fit(x, y)``).
UNKNOWN = -1


# ------------------------------------------------------------------ graph
def descendants(schema: "LabelSchema") -> dict[str, tuple[str, ...]]:
    """Parent -> every label that implies it, directly or through others (column order)."""
    out: dict[str, set[str]] = {}
    for child in schema.implies:
        stack = list(schema.implies[child])
        seen: set[str] = set()
        while stack:
            p = stack.pop()
            if p in seen:
                continue
            seen.add(p)
            out.setdefault(p, set()).add(child)
            stack.extend(schema.implies.get(p, ()))
    order = {x: i for i, x in enumerate(schema.labels)}
    return {p: tuple(sorted(cs, key=order.__getitem__)) for p, cs in out.items()}


def implication_tree(schema: "LabelSchema") -> list[str]:
    """Text lines of the implication forest: each root parent, its children indented under it."""
    children: dict[str, list[str]] = {}
    for child, parents in schema.implies.items():
        for p in parents:
            children.setdefault(p, []).append(child)
    roots = [p for p in children if p not in schema.implies]
    lines: list[str] = []

    def walk(node: str, depth: int) -> None:
        lines.append("  " * depth + ("- " if depth else "") + node)
        for c in children.get(node, []):
            walk(c, depth + 1)

    for r in roots:
        walk(r, 0)
    return lines


def _cols(schema: "LabelSchema", names: Sequence[str]) -> list[int]:
    return [schema.labels.index(x) for x in names]


def _group_of_sources(schema: "LabelSchema", srcs: Sequence[str]) -> str | None:
    return schema.group_of(srcs[0])


# --------------------------------------------------------------- derived
def derive_decisions(m: np.ndarray, schema: "LabelSchema") -> np.ndarray:
    """``(n, n_derived)`` uint8: each derived label is the OR of its sources' columns in ``m``
    (a matrix over at least the free labels, in column order)."""
    m = np.asarray(m)
    out = np.zeros((m.shape[0], len(schema.derived)), dtype=np.uint8)
    for j, srcs in enumerate(schema.derived.values()):
        out[:, j] = (m[:, _cols(schema, srcs)] != 0).any(axis=1)
    return out


def derive_scores(p: np.ndarray, schema: "LabelSchema") -> np.ndarray:
    """``(n, n_derived)`` scores from probabilities over the free labels: ``sum p`` over members
    of one group (disjoint events), ``1 - prod(1 - p)`` over independent sources (noisy-OR)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.zeros((p.shape[0], len(schema.derived)))
    for j, srcs in enumerate(schema.derived.values()):
        sub = p[:, _cols(schema, srcs)]
        if _group_of_sources(schema, srcs) is not None:
            out[:, j] = np.clip(sub.sum(axis=1), 0.0, 1.0)
        else:
            out[:, j] = 1.0 - np.prod(1.0 - sub, axis=1)
    return out


def constrain_scores(p: np.ndarray, schema: "LabelSchema") -> np.ndarray:
    """The max-constraint on scores (numpy twin of the head's): ``s(parent) = max(s(parent),
    s(every descendant))``; other columns unchanged. ``p`` covers at least the free labels."""
    s = np.array(p, dtype=np.float64, copy=True)
    for parent, kids in descendants(schema).items():
        j = schema.labels.index(parent)
        s[:, j] = np.max(np.concatenate([s[:, [j]], np.asarray(p, dtype=np.float64)[:, _cols(schema, kids)]], axis=1),
                         axis=1)
    return s


# --------------------------------------------------------------- decisions
def enforce(decisions: np.ndarray, schema: "LabelSchema", scores: np.ndarray | None = None) -> np.ndarray:
    """Impose the schema's structure on 0/1 decisions; returns (n, n_labels) uint8.

    ``decisions``: (n, n_free), (n, n_outputs) or (n, n_labels). At-most-one and exclusive groups
    keep only their highest-``scores`` member that is on (the first in column order without
    scores); with scores, an exclusive group with no member on gets its arg-max member (without
    scores such a row is left as given); every parent of an on child is turned on
    (transitively); derived labels and ``none`` are recomputed.
    This is the one place structure is imposed: decision rules call it last.
    """
    d = np.asarray(decisions)
    if d.ndim != 2 or d.shape[1] not in (schema.n_free, schema.n_outputs, schema.n_labels):
        from ..errors import InputError

        raise InputError(f"enforce: decisions have shape {d.shape}; expected (n, {schema.n_free}), "
                         f"(n, {schema.n_outputs}) or (n, {schema.n_labels}) over {list(schema.labels)}")
    out = (d[:, : schema.n_free] != 0).astype(np.uint8)
    n = out.shape[0]
    s = None if scores is None else np.asarray(scores, dtype=np.float64)
    for block in schema.layout:
        if block.kind == "softmax" and s is not None:
            # Exactly one: a row with none on gets its arg-max member; several are cut below.
            on = out[:, block.start : block.stop].astype(bool)
            empty = ~on.any(axis=1)
            if empty.any():
                best = np.argmax(s[:, block.start : block.stop], axis=1)
                out[np.flatnonzero(empty), block.start + best[empty]] = 1
        if block.kind not in ("at_most_one", "softmax"):
            continue
        on = out[:, block.start : block.stop].astype(bool)
        several = on.sum(axis=1) > 1
        if several.any():
            if s is not None:
                sub = np.where(on, s[:, block.start : block.stop], -np.inf)
            else:
                sub = np.where(on, -np.arange(block.stop - block.start, dtype=np.float64)[None, :], -np.inf)
            best = np.argmax(sub, axis=1)
            keep = np.zeros_like(on)
            keep[np.arange(n), best] = True
            out[several, block.start : block.stop] = keep[several]
    for parent, kids in descendants(schema).items():
        j = schema.labels.index(parent)
        out[:, j] |= out[:, _cols(schema, kids)].any(axis=1).astype(np.uint8)
    return schema.complete(out).astype(np.uint8)


def violations(decisions: np.ndarray, schema: "LabelSchema") -> dict[str, np.ndarray]:
    """Per rule, which rows of (n, n_labels) 0/1 decisions break it (bool arrays):
    ``implies`` (a child on, a parent off), ``at_most_one`` (two members on), ``exclusive``
    (not exactly one member on), ``derived`` (not the OR of its sources), ``none``."""
    d = np.asarray(decisions) != 0
    out: dict[str, np.ndarray] = {}
    n = d.shape[0]
    if schema.implies:
        bad = np.zeros(n, dtype=bool)
        for child, parents in schema.implies.items():
            c = d[:, schema.labels.index(child)]
            for p in parents:
                bad |= c & ~d[:, schema.labels.index(p)]
        out["implies"] = bad
    for kind, name in (("softmax", "exclusive"), ("at_most_one", "at_most_one")):
        blocks = [b for b in schema.layout if b.kind == kind]
        if blocks:
            bad = np.zeros(n, dtype=bool)
            for b in blocks:
                k = d[:, b.start : b.stop].sum(axis=1)
                bad |= (k != 1) if kind == "softmax" else (k > 1)
            out[name] = bad
    if schema.derived:
        given = d[:, schema.n_free : schema.n_outputs]
        out["derived"] = (given != derive_decisions(d, schema).astype(bool)).any(axis=1)
    if schema.none:
        none = d[:, schema.none_index]
        out["none"] = none == d[:, : len(schema.independent)].any(axis=1)
    return out


def violation_rate(scores: np.ndarray, schema: "LabelSchema", threshold: float = 0.5) -> dict[str, Any]:
    """How often naive ``score >= threshold`` decisions on every column of (n, n_labels) scores
    break the schema: ``{"rows", "any": share, "by_rule": {rule: share}}``. This is what the
    structure buys: decisions made by :func:`enforce` break none of them."""
    s = np.asarray(scores, dtype=np.float64)
    if s.shape[1] != schema.n_labels:
        s = schema.complete_scores(s)
    v = violations((s >= threshold).astype(np.uint8), schema)
    n = s.shape[0]
    any_bad = np.zeros(n, dtype=bool)
    for b in v.values():
        any_bad |= b
    return {"rows": int(n), "threshold": float(threshold), "any": float(any_bad.mean()) if n else float("nan"),
            "by_rule": {k: float(b.mean()) if n else float("nan") for k, b in v.items()}}


# --------------------------------------------------------------- unknown cells
def propagate_known(y: np.ndarray, known: np.ndarray, schema: "LabelSchema") -> tuple[np.ndarray, np.ndarray, int]:
    """Fill what the structure implies about unknown cells of a full (n, n_labels) matrix.

    Returns ``(y, known, n_filled)``: a group member 1 makes the other members known 0; a
    known-1 child makes its parents known 1; a known-0 parent makes its children known 0; a derived
    label is known 1 when a source is known 1, known 0 when all are known 0 (unknown otherwise); the
    ``none`` label likewise. Unknown cells hold 0 in ``y``.
    """
    y = np.array(y, dtype=np.uint8, copy=True)
    k = np.array(known, dtype=bool, copy=True)
    before = k.copy()
    for b in schema.layout:
        if b.kind in ("softmax", "at_most_one"):
            sub_on = (y[:, b.start : b.stop] == 1) & k[:, b.start : b.stop]
            decided = sub_on.any(axis=1)
            k[decided, b.start : b.stop] = True
            y[decided, b.start : b.stop] = sub_on[decided].astype(np.uint8)
            # No member 1 and one unknown: which member (or absent) holds is not known at all.
            k[~decided & ~k[:, b.start : b.stop].all(axis=1), b.start : b.stop] = False
    # implications, to a fixed point (depth of the forest)
    for _ in range(len(schema.implies) + 1):
        changed = False
        for child, parents in schema.implies.items():
            c = schema.labels.index(child)
            for p in parents:
                j = schema.labels.index(p)
                up = k[:, c] & (y[:, c] == 1) & ~k[:, j]
                down = k[:, j] & (y[:, j] == 0) & ~k[:, c]
                if up.any() or down.any():
                    changed = True
                    y[up, j], k[up, j] = 1, True
                    y[down, c], k[down, c] = 0, True
        if not changed:
            break
    for j, srcs in enumerate(schema.derived.values()):
        col, cols = schema.n_free + j, _cols(schema, srcs)
        # A derived label given as known 0 makes every source known 0.
        given_off = k[:, col] & (y[:, col] == 0)
        for c in cols:
            y[given_off & ~k[:, c], c] = 0
            k[given_off, c] = True
        any_on = ((y[:, cols] == 1) & k[:, cols]).any(axis=1)
        all_off = ((y[:, cols] == 0) & k[:, cols]).all(axis=1)
        decided = any_on | all_off
        # Given as known 1 with unknown sources: kept (the table knows more than its sources say).
        y[decided, col] = any_on[decided]
        k[:, col] = decided | k[:, col]
    if schema.none:
        n_ind = len(schema.independent)
        any_on = ((y[:, :n_ind] == 1) & k[:, :n_ind]).any(axis=1)
        all_off = ((y[:, :n_ind] == 0) & k[:, :n_ind]).all(axis=1)
        y[:, schema.none_index] = ~any_on & all_off
        k[:, schema.none_index] = any_on | all_off
    y[~k] = 0
    return y, k, int((k & ~before).sum())


def apply_policy(y: np.ndarray, known: np.ndarray, schema: "LabelSchema",
                 labels: Sequence[str] | None = None) -> np.ndarray:
    """Training targets: ``y`` with unknown cells set by each label's policy -- 1 (positive),
    0 (negative), or :data:`UNKNOWN` (= -1, ignore: the losses mask it). Returns float32.
    ``labels`` names the columns (default: ``schema.labels`` or ``schema.output_labels`` by width)."""
    y = np.asarray(y, dtype=np.float32)
    k = np.asarray(known, dtype=bool)
    if labels is None:
        labels = schema.labels if y.shape[1] == schema.n_labels else schema.labels[: y.shape[1]]
    out = y.copy()
    for j, label in enumerate(labels):
        pol = schema.policy(label)
        fill = {"ignore": UNKNOWN, "positive": 1.0, "negative": 0.0}[pol]
        out[~k[:, j], j] = fill
    return out


def settle_table(y: np.ndarray, known: np.ndarray, schema: "LabelSchema", *, row_names: Any = None,
                 source: str | None = None, repair: bool = False) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """What a table reader does with a freshly read (n, n_labels) matrix and its known mask.

    ``repair``: a known-1 child with a known-0 parent gets the parent set to 1 (transitively;
    counted in the returned notes) instead of being refused. Then every rule is checked
    (:meth:`LabelSchema.validate`, unknown cells break none; the error names the row), and what the
    structure implies about unknown cells is filled in (:func:`propagate_known`). Returns
    ``(y, known, notes)``.
    """
    y = np.array(y, dtype=np.uint8, copy=True)
    k = np.asarray(known, dtype=bool)
    notes: list[str] = []
    if repair and schema.implies:
        fixed = np.zeros(y.shape, dtype=bool)
        for _ in range(len(schema.implies) + 1):
            changed = False
            for child, parents in schema.implies.items():
                c = schema.labels.index(child)
                for p in parents:
                    j = schema.labels.index(p)
                    rows = (y[:, c] == 1) & k[:, c] & (y[:, j] == 0) & k[:, j]
                    if rows.any():
                        y[rows, j] = 1
                        fixed[rows, j] = changed = True
            if not changed:
                break
        if fixed.any():
            notes.append(f"{int(fixed.sum())} missing parent label(s) added in {int(fixed.any(axis=1).sum())} row(s) "
                         "where a child was given without its parent (repair_implications / --repair-implications)")
    schema.validate(y, row_names=row_names, source=source, known=k)
    y, k, filled = propagate_known(y, k, schema)
    if schema.has_unknown:
        notes.append(f"{int((~k).sum())} label cell(s) unknown ({', '.join(repr(v) for v in schema.unknown_values)}); "
                     f"{filled} cell(s) filled from the structure (a group member 1, implications, derived labels)")
    return y, k, tuple(notes)
