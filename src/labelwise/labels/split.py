"""Leak-free splits: grouped (by patient) multi-label stratification.

Images of one patient must all land in one split, or a model is tested on patients it was
trained on. Within that constraint every label should be spread like the whole table:

* **positive share** of label ``j`` in split ``k``: the fraction of label ``j``'s positive rows
  that land in split ``k``, ``share[k, j] = pos[k, j] / pos[:, j].sum()``. Its target is the
  split's requested fraction ``f[k]``; the **deviation** is ``|share[k, j] - f[k]|`` in
  percentage points (pp), and a label's deviation is the largest over the splits.
* **prevalence** of label ``j`` in split ``k``: ``pos[k, j] / rows[k]`` (reported too; when the
  shares and the split sizes are on target, every split's prevalence equals the table's).
* **size error** of split ``k``: ``rows[k] / n - f[k]`` in pp.

Algorithm (:func:`grouped_stratified_split`): iterative stratification (Sechidis, Tsoumakas &
Vlahavas 2011) on groups instead of rows -- label counts are summed per group; labels are
processed from the rarest; each group that has the label goes to the split with the largest
remaining demand for it (ties: the largest remaining total demand, then a seeded random
draw). Then a refinement pass moves single groups, and swaps pairs of groups, between splits
while that lowers ``sum_{k,j} (deviation[k, j] / tol[j])**2`` plus the same term for the split
sizes; it stops at a local optimum. Small tables (< 15,000 groups) are split several times
with seeds derived from ``seed`` and the split with the lowest objective is kept. Deterministic
for a given seed. On ChestX-ray14 (30,805 patients) every label lands within 0.03 pp of its
target except Hernia (227 positives: 0.18 pp, the least integer counts allow), in ~1 s.
No Keras here.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError, TableError

__all__ = ["grouped_stratified_split", "split_table", "split_report", "check_split", "random_group_split",
           "parse_fractions", "integer_floor_pp", "split_name", "SPLIT_ALIASES", "column_splits", "read_splits_file", "splits_for"]

# The usual spellings of the three split names, read as one everywhere (compared after strip + lower).
SPLIT_ALIASES = {"train": "train", "training": "train",
                 "val": "val", "valid": "val", "validation": "val", "dev": "val", "tune": "val",
                 "test": "test", "testing": "test", "holdout": "test", "hold-out": "test",
                 "hold_out": "test", "heldout": "test", "held-out": "test"}


def split_name(value: Any) -> str:
    """A split value's one name: ``" Validation "`` -> ``"val"``, ``"Holdout"`` -> ``"test"`` (see
    :data:`SPLIT_ALIASES`); any other value lower-cased and stripped (``"fold3"``)."""
    text = str(value).strip().lower()
    return SPLIT_ALIASES.get(text, text)


def read_splits_file(path: Any) -> pd.DataFrame:
    """The file ``labelwise split --out`` writes (``id,group,split``; any CSV with an ``id`` and a
    ``split`` column): a frame with ``id`` and ``split`` (names normalised by :func:`split_name`)
    and ``line`` (the file's line of each row). Raises ``InputError`` for a missing file, a missing
    column, an empty cell, or one id given two different splits (repeated identical rows are kept once)."""
    from pathlib import Path

    from .csvread import _data_rows, _read_csv

    p = Path(path)
    if not p.exists():
        raise InputError(f"splits file {p} does not exist (write it with: labelwise split TABLE --out {p})")
    try:
        frame, lines = _data_rows(_read_csv(p), p, first_line=2)
    except TableError as e:
        raise InputError(str(e)) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    lower = {c.lower(): c for c in frame.columns}
    if "id" not in lower or "split" not in lower:
        raise InputError(f"{p}: a split file needs an 'id' and a 'split' column (as labelwise split --out writes); "
                         f"the columns are {list(frame.columns)}")
    ids = frame[lower["id"]].fillna("").astype(str).str.strip()
    names = frame[lower["split"]].fillna("").astype(str).map(split_name)
    for col, values in (("id", ids), ("split", names)):
        empty = np.flatnonzero((values == "").to_numpy())
        if empty.size:
            raise InputError(f"{p}, line {int(lines[empty[0]])}: empty {col!r}; every row needs an id and a split")
    out = pd.DataFrame({"id": ids.to_numpy(), "split": names.to_numpy(), "line": lines})
    both = out.drop_duplicates(["id", "split"])
    dup = both["id"].duplicated(keep=False).to_numpy()
    if dup.any():
        rows = both[dup]
        first = rows["id"].iloc[0]
        where = rows[rows["id"] == first]
        raise InputError(f"{p}: id {first!r} is in splits {sorted(set(where['split']))} (lines "
                         f"{', '.join(str(int(x)) for x in where['line'])}); each id belongs to one split")
    return both.reset_index(drop=True)


def splits_for(ids: Sequence[Any], path: Any, *, source: Any = "the table") -> np.ndarray:
    """Each id's split name from the splits file ``path`` (:func:`read_splits_file`), joined by
    :func:`labelwise.labels.ids.match_ids` (exact id, relative path, file name, stem). Raises
    ``InputError`` naming the ids that have no split in the file."""
    from .ids import match_ids

    frame = read_splits_file(path)
    at = match_ids(list(ids), frame["id"].tolist(), one_to_one=False)
    missing = np.flatnonzero(at < 0)
    if missing.size:
        shown = ", ".join(repr(str(ids[i])) for i in missing[:5])
        raise InputError(f"{source}: {missing.size} of {len(ids)} row(s) have no split in {path} (e.g. {shown}); "
                         f"the split file must come from this table: labelwise split TABLE --out {path}")
    return frame["split"].to_numpy(dtype=object)[at]


def column_splits(table: Any, column: str, source: Any) -> np.ndarray:
    """Each row's split (``"train"``, ``"val"`` or ``"test"``, read by :func:`split_name`) from
    ``table``'s column ``column``; ``InputError`` naming ``source`` when the column is missing or
    holds another value."""
    if column not in table.extra.columns:
        raise InputError(f"{source}: no column {column!r} to split by; columns are {list(table.extra.columns)}")
    names = table.extra[column].map(split_name).to_numpy(dtype=object)
    bad = sorted(set(names) - {"train", "val", "test"})
    if bad:
        raise InputError(f"{source}: column {column!r} has value(s) {bad[:5]}; use train, val or test")
    return names


def parse_fractions(fractions: Sequence[float] | str) -> np.ndarray:
    """Fractions as a float array summing to 1 (``"0.7,0.1,0.2"`` accepted); clear error otherwise."""
    if isinstance(fractions, str):
        try:
            fractions = [float(x) for x in fractions.split(",") if x.strip()]
        except ValueError:
            raise InputError(f"fractions {fractions!r} must be numbers separated by commas, e.g. 0.7,0.1,0.2") from None
    f = np.asarray(fractions, dtype=np.float64).ravel()
    if f.size < 2 or not np.all(np.isfinite(f)) or np.any(f <= 0):
        # a 0 reads as "no such split", but a split of zero rows has no share to stratify to
        zero = " (a 0 is not allowed: leave that split out instead, e.g. 0.8,0.2)" if np.any(f == 0) else ""
        raise InputError(f"fractions {f.tolist()} must be two or more numbers, each above 0, "
                         f"e.g. 0.7,0.1,0.2{zero}")
    if abs(f.sum() - 1.0) > 1e-6:
        raise InputError(f"fractions {f.tolist()} sum to {f.sum():g}; they must sum to 1")
    return f / f.sum()


def _check_seed(seed: Any) -> int:
    """The seed as an int; numpy's own error for a negative one is a traceback from Cython."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _group_matrix(y: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-group counts: column 0 = rows in the group, columns 1.. = positives per label."""
    codes, uniques = pd.factorize(pd.Series(groups), sort=False)
    if (codes < 0).any():
        raise InputError("group values must not be missing (NaN)")
    counts = np.zeros((len(uniques), y.shape[1] + 1), dtype=np.int64)
    np.add.at(counts[:, 0], codes, 1)
    # Summing label rows per group with a sparse-free bincount per column is O(n * labels).
    for j in range(y.shape[1]):
        counts[:, j + 1] = np.bincount(codes, weights=y[:, j], minlength=len(uniques)).astype(np.int64)
    return counts, codes


def _validate(y: Any, groups: Any, fractions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(y)
    if y.ndim != 2:
        raise InputError(f"y must be a 2-D (rows, labels) 0/1 matrix, got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise InputError("y must hold only 0 and 1")
    groups = np.asarray(groups)
    if groups.shape != (y.shape[0],):
        raise InputError(f"groups has shape {groups.shape}; expected one group per row ({y.shape[0]},)")
    f = parse_fractions(fractions)
    if y.shape[0] < f.size:
        raise InputError(f"cannot split {y.shape[0]} rows into {f.size} parts")
    return y.astype(np.int64), groups, f


def grouped_stratified_split(y: Any, groups: Any, fractions: Sequence[float] | str, *, seed: int = 0,
                             refine: bool = True, tries: int | None = None, max_moves: int = 20000) -> np.ndarray:
    """Split index (0..len(fractions)-1) per row; all rows of a group share one split.

    See the module docstring for the algorithm and the definitions of share and deviation.
    ``tries`` runs the whole procedure with that many seeds derived from ``seed`` and keeps the
    split with the lowest objective; the default, ``clip(30000 // n_groups, 1, 16)``, restarts
    only small tables, where one greedy pass can stop at a poor local optimum (a 700-patient
    table takes ~0.3 s for 16 tries; ChestX-ray14's 30,805 patients take one try, ~0.5 s).
    """
    y, groups, f = _validate(y, groups, fractions)
    seed = _check_seed(seed)
    counts, codes = _group_matrix(y, groups)
    if tries is None:
        tries = int(np.clip(30000 // max(len(counts), 1), 1, 16))
    best, best_obj = None, np.inf
    for child in np.random.SeedSequence(seed).spawn(max(int(tries), 1)):
        rng = np.random.default_rng(child)
        assign = _iterative_stratification(counts, f, rng)
        if refine:
            assign = _refine(counts, assign, f, max_moves=max_moves)
        obj = _objective(counts, assign, f)
        if obj < best_obj - 1e-12:
            best, best_obj = assign, obj
    return best[codes]


def _weights(counts: np.ndarray) -> np.ndarray:
    # Each column's deviation is measured in units of 0.1 pp of its own total, so one image of a
    # rare label (Hernia: 1/227 = 0.44 pp) weighs as much as it matters, and the size column
    # (column 0) is held to the same pp scale as the labels.
    totals = counts.sum(axis=0).astype(np.float64)
    w = 1.0 / (np.maximum(totals, 1.0) * 1e-3) ** 2
    w[totals == 0] = 0.0
    return w


def _objective(counts: np.ndarray, assign: np.ndarray, f: np.ndarray) -> float:
    """``sum_{k,j} w_j (rows_or_positives[k, j] - f[k] * total[j])**2`` (see :func:`_weights`)."""
    cur = np.zeros((f.size, counts.shape[1]))
    np.add.at(cur, assign, counts.astype(np.float64))
    dev = cur - f[:, None] * counts.sum(axis=0)[None, :]
    return float((dev**2 * _weights(counts)[None, :]).sum())


def random_group_split(groups: Any, fractions: Sequence[float] | str, *, seed: int = 0) -> np.ndarray:
    """Reference: shuffle the groups (seeded) and cut the list at the cumulative row fractions.

    The plain leak-free split that most scripts use; it ignores the labels.
    """
    groups = np.asarray(groups)
    f = parse_fractions(fractions)
    seed = _check_seed(seed)
    codes, uniques = pd.factorize(pd.Series(groups), sort=False)
    sizes = np.bincount(codes, minlength=len(uniques))
    order = np.random.default_rng(seed).permutation(len(uniques))
    cum = np.cumsum(sizes[order]) / sizes.sum()
    split_of_pos = np.searchsorted(np.cumsum(f)[:-1], cum - 0.5 * sizes[order] / sizes.sum(), side="right")
    assign = np.empty(len(uniques), dtype=np.int64)
    assign[order] = split_of_pos
    return assign[codes]


# ------------------------------------------------------------------ phase 1
def _iterative_stratification(counts: np.ndarray, f: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n_groups, n_cols = counts.shape
    k = f.size
    demand = f[:, None] * counts.sum(axis=0)[None, :].astype(np.float64)  # (k, 1 + labels)
    assign = np.full(n_groups, -1, dtype=np.int64)
    remaining = counts[:, 1:].sum(axis=0).astype(np.float64)
    done = np.zeros(counts.shape[1] - 1, dtype=bool)
    noise = rng.random(n_groups)
    tie = rng.random((n_groups, k)) * 1e-9
    while True:
        # The rarest label that still has unassigned positives.
        cand = np.where(done | (remaining <= 0), np.inf, remaining)
        j = int(np.argmin(cand))
        if not np.isfinite(cand[j]):
            break
        done[j] = True
        members = np.flatnonzero((assign < 0) & (counts[:, j + 1] > 0))
        # Large groups first (they are the hard pieces to place), random order among equals.
        order = np.lexsort((noise[members], -counts[members, j + 1]))
        for g in members[order]:
            c = counts[g]
            d = demand[:, j + 1]
            best = np.flatnonzero(d == d.max())
            if best.size > 1:
                tot = demand[best, 0] + tie[g, best]
                best = best[np.argmax(tot)]
            else:
                best = best[0]
            assign[g] = best
            demand[best] -= c
            remaining -= c[1:]
    rest = np.flatnonzero(assign < 0)  # groups with no positive label at all
    for g in rest[np.argsort(noise[rest])]:
        best = int(np.argmax(demand[:, 0] + tie[g]))
        assign[g] = best
        demand[best] -= counts[g]
    return assign


# ------------------------------------------------------------------ phase 2
def _refine(counts: np.ndarray, assign: np.ndarray, f: np.ndarray, *, max_moves: int) -> np.ndarray:
    """Greedy moves and swaps of groups that lower sum((dev/tol)^2); stops at a local optimum."""
    c = counts.astype(np.float64)
    totals = c.sum(axis=0)
    k = f.size
    w = _weights(counts)
    cw = c * w
    wc2 = (cw * c).sum(axis=1)  # sum_j w_j c_gj^2, per group
    target = f[:, None] * totals[None, :]
    cur = np.zeros((k, c.shape[1]))
    np.add.at(cur, assign, c)
    assign = assign.copy()
    rows = np.arange(len(c))
    # proj[g, k] = sum_j w_j c_gj D_kj. Skinny products go through einsum: BLAS threads on a
    # busy machine make (30k x 16) @ (16 x 3) several times slower than a plain loop.
    proj = np.einsum("gj,kj->gk", cw, cur - target)
    moves = 0
    while moves < max_moves:
        # Moving group g from a to b changes the objective by
        #   sum_j w_j [ (D_a - c)^2 - D_a^2 + (D_b + c)^2 - D_b^2 ] = 2 c.(w (D_b - D_a)) + 2 sum w c^2
        own = proj[rows, assign]
        delta = 2.0 * (proj - own[:, None]) + 2.0 * wc2[:, None]
        delta[rows, assign] = np.inf
        flat = int(np.argmin(delta))
        g, b = divmod(flat, k)
        if delta[g, b] < -1e-9:
            a = assign[g]
            cur[a] -= c[g]
            cur[b] += c[g]
            assign[g] = b
            # Only splits a and b changed; a group touches few labels, so update through those.
            nz = np.flatnonzero(c[g])
            u = cw[:, nz] @ c[g, nz] if nz.size > 1 else cw[:, nz[0]] * c[g, nz[0]]
            proj[:, a] -= u
            proj[:, b] += u
            moves += 1
            continue
        # No single move helps: try swapping a group of split a with one of split b.
        if not _best_swap(c, w, assign, cur, target, wc2, k):
            break
        proj = np.einsum("gj,kj->gk", cw, cur - target)
        moves += 1
    return assign


def _best_swap(c, w, assign, cur, target, wc2, k, n_cand: int = 64) -> bool:
    """Apply the best improving swap among the most promising candidates; False if none improves."""
    dev = cur - target
    best = (-1e-9, None)
    for a in range(k):
        for b in range(k):
            if a == b:
                continue
            in_a = np.flatnonzero(assign == a)
            in_b = np.flatnonzero(assign == b)
            if not in_a.size or not in_b.size:
                continue
            # Swap g (a->b) with h (b->a): net vector d = c_g - c_h moves from a to b.
            # delta = 2 d.(w (D_b - D_a)) + 2 sum_j w_j d_j^2
            diff = w * (dev[b] - dev[a])
            lin_a = np.einsum("gj,j->g", c[in_a], diff)
            pick = np.argsort(lin_a + wc2[in_a], kind="stable")[:n_cand]
            cand = in_a[pick]
            lin_b = np.einsum("gj,j->g", c[in_b], diff)
            cross = np.einsum("cj,hj->ch", c[cand] * w, c[in_b])  # (n_cand, |b|)
            delta = 2.0 * (lin_a[pick][:, None] - lin_b[None, :]) \
                + 2.0 * (wc2[cand][:, None] + wc2[in_b][None, :] - 2.0 * cross)
            i, jj = np.unravel_index(int(np.argmin(delta)), delta.shape)
            if delta[i, jj] < best[0]:
                best = (delta[i, jj], (cand[i], in_b[jj], a, b))
    if best[1] is None:
        return False
    g, h, a, b = best[1]
    cur[a] += c[h] - c[g]
    cur[b] += c[g] - c[h]
    assign[g], assign[h] = b, a
    return True


# ------------------------------------------------------------------ table level
def split_table(table, group_column: str | None | bool, fractions: Sequence[float] | str, *, seed: int = 0,
                names: Sequence[str] = ("train", "val", "test")) -> pd.DataFrame:
    """Split a :class:`~labelwise.labels.tables.LabelTable`: a DataFrame with columns ``id, group, split``
    aligned to the table's rows.

    ``group_column=None`` uses the patient column when the table has one (the first of
    ``labelwise.labels.stats.DEFAULT_GROUP_COLUMNS``, e.g. "Patient ID"), so the default never leaks;
    a table without one, or ``group_column=False``, makes every row its own group. With unknown
    cells (``table.known``) the split stratifies on the known positives: an unknown cell counts as
    no positive, so each split gets its share of every label's known positives.
    """
    from .stats import DEFAULT_GROUP_COLUMNS

    f = parse_fractions(fractions)
    names = list(names)
    if len(names) != f.size:
        raise InputError(f"{len(names)} split names {names} for {f.size} fractions {f.tolist()}; give one name each")
    if len(set(names)) != len(names):
        raise InputError(f"split names {names} must be distinct")
    if group_column is None:
        group_column = next((c for c in DEFAULT_GROUP_COLUMNS if c in table.extra.columns), False)
    groups = table.groups(group_column) if group_column is not False else np.asarray(table.ids)
    known = getattr(table, "known", None)
    y = table.y if known is None else (np.asarray(table.y) != 0) & known
    assign = grouped_stratified_split(y.astype(np.uint8), groups, f, seed=seed)
    return pd.DataFrame({"id": table.ids, "group": groups, "split": np.asarray(names, dtype=object)[assign]})


def split_report(y: Any, groups: Any, assignment: Any, fractions: Sequence[float] | str,
                 label_names: Sequence[str], *, names: Sequence[str] | None = None) -> dict:
    """How well a split keeps each label's distribution (JSON-ready; definitions in the module docstring).

    Keys: ``splits`` (rows, share, size_error_pp, groups per split), ``labels`` (per label:
    positives, target share = the split fraction, actual share, prevalence, count per split, and
    ``max_deviation_pp``), ``group_overlap`` (groups found in more than one split), ``worst``.
    """
    y = np.asarray(y)
    groups = np.asarray(groups)
    assignment = np.asarray(assignment)
    f = parse_fractions(fractions)
    k = f.size
    names = list(names) if names is not None else [str(i) for i in range(k)]
    if assignment.dtype.kind in "iu":
        idx = assignment.astype(np.int64)
    else:
        lookup = {n: i for i, n in enumerate(names)}
        unknown = sorted(set(assignment.tolist()) - set(lookup))
        if unknown:
            raise InputError(f"split values {unknown} are not among the split names {names}")
        idx = np.fromiter((lookup[v] for v in assignment), dtype=np.int64, count=len(assignment))
    n = len(y)
    rows = np.bincount(idx, minlength=k)
    pos = np.zeros((k, y.shape[1]), dtype=np.int64)
    np.add.at(pos, idx, y.astype(np.int64))
    tot = pos.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = pos / np.where(tot > 0, tot, np.nan)
        prev = pos / np.where(rows > 0, rows, np.nan)[:, None]
    dev = np.abs(share - f[:, None]) * 100
    codes, _ = pd.factorize(pd.Series(groups), sort=False)
    n_splits_per_group = pd.Series(idx).groupby(codes).nunique().to_numpy()
    labels = {}
    for j, name in enumerate(label_names):
        labels[str(name)] = {
            "positives": int(tot[j]),
            "target_share": {names[s]: float(f[s]) for s in range(k)},
            "share": {names[s]: _f(share[s, j]) for s in range(k)},
            "prevalence": {names[s]: _f(prev[s, j]) for s in range(k)},
            "count": {names[s]: int(pos[s, j]) for s in range(k)},
            "max_deviation_pp": _f(np.nanmax(dev[:, j])) if tot[j] else None,
            "floor_pp": integer_floor_pp(int(tot[j]), f),
        }
    worst = max(((v["max_deviation_pp"], k_) for k_, v in labels.items() if v["max_deviation_pp"] is not None),
                default=(None, None))
    return {
        "rows": int(n),
        "groups": int(len(n_splits_per_group)),
        "fractions": {names[s]: float(f[s]) for s in range(k)},
        "splits": {names[s]: {"rows": int(rows[s]), "share": float(rows[s] / n),
                              "size_error_pp": float((rows[s] / n - f[s]) * 100),
                              "groups": int(pd.Series(codes[idx == s]).nunique())} for s in range(k)},
        "labels": labels,
        "group_overlap": int((n_splits_per_group > 1).sum()),
        "worst": {"label": worst[1], "max_deviation_pp": worst[0]},
    }


def integer_floor_pp(total: int, fractions: Sequence[float] | str) -> float:
    """The least largest deviation (pp) any split can reach for a label with ``total`` positives.

    Counts are integers: 227 Hernia rows cut 70/10/20 can at best be 159/23/45 (0.18 pp). Each
    split's count is taken as the floor or ceiling of its target (the last split gets the rest);
    the patient grouping is ignored, so the true optimum can only be higher.
    """
    import itertools

    f = parse_fractions(fractions)
    if total <= 0:
        return 0.0
    best = np.inf
    options = [(int(np.floor(total * x)), int(np.ceil(total * x))) for x in f[:-1]]
    for counts in itertools.product(*options):
        last = total - sum(counts)
        if last < 0:
            continue
        shares = np.array([*counts, last], dtype=np.float64) / total
        best = min(best, float(np.abs(shares - f).max() * 100))
    return best


def _row_name(table, i: int) -> str:
    """How errors name row ``i`` of a LabelTable or of a DataFrame read from a CSV.

    A DataFrame may carry ``attrs["lines"]`` (1-based file lines) and ``attrs["id_column"]``.
    """
    if not isinstance(table, pd.DataFrame):
        return table.row_name(i)
    id_col = table.attrs.get("id_column") or ("id" if "id" in table.columns else table.columns[0])
    name = str(table[id_col].iloc[i])
    lines = table.attrs.get("lines")
    return f"{name} at line {int(lines[i])}" if lines is not None else name


def _f(x: float) -> float | None:
    return None if x != x else float(x)


def check_split(table, split_column: str, group_column: str) -> dict:
    """Find groups (patients) that appear in more than one split: a leak.

    ``table`` is a :class:`~labelwise.labels.tables.LabelTable` (columns looked up in ``extra``) or a
    DataFrame. Returns ``{"leak": bool, "splits": {name: rows}, "overlaps": [{"splits": [a, b],
    "groups": n, "rows": n, "examples": [...]}], "n_groups": ...}``.
    """
    frame = table if isinstance(table, pd.DataFrame) else table.extra
    source = table.attrs.get("source", "table") if isinstance(table, pd.DataFrame) else table.source
    cols = list(frame.columns)
    for col in (split_column, group_column):
        if col not in cols:
            raise TableError(f"{source}: no column {col!r}; the columns are {cols}")
    for col, what in ((split_column, "split"), (group_column, "group")):
        # groupby would silently drop a row with no group, and a missing split name cannot be
        # compared with the others: either way the row could not be checked.
        missing = np.flatnonzero(frame[col].isna().to_numpy()
                                 | (frame[col].astype(str).str.strip() == "").to_numpy())
        if missing.size:
            raise TableError(
                f"{source}, row {_row_name(table, int(missing[0]))}: empty {col!r}; every row needs a {what} "
                f"so it can be checked (fill it in, or remove the row)"
                + (f" ({missing.size - 1} more row(s) like this)" if missing.size > 1 else "")
            )
    s = frame[split_column].astype(str).str.strip().to_numpy()
    g = frame[group_column].astype(str).str.strip().to_numpy()
    sub = pd.DataFrame({"g": g, "s": s})
    per_group = sub.groupby("g")["s"].agg(lambda v: tuple(sorted(set(v))))
    split_names = sorted(set(s.tolist()))
    overlaps = []
    for i, a in enumerate(split_names):
        for b in split_names[i + 1 :]:
            in_a = set(sub.loc[sub.s == a, "g"])
            both = sorted(in_a & set(sub.loc[sub.s == b, "g"]))
            if both:
                rows = int(sub.g.isin(both).sum())
                overlaps.append({"splits": [a, b], "groups": len(both), "rows": rows, "examples": both[:5]})
    return {
        "leak": bool(overlaps),
        "n_groups": int(len(per_group)),
        "splits": {n: int((s == n).sum()) for n in split_names},
        "groups_in_several_splits": int((per_group.map(len) > 1).sum()),
        "overlaps": overlaps,
    }
