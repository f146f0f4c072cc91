"""What is in a label table: prevalence, co-occurrence, images per patient, warnings.

:func:`summarize` returns a JSON-ready dict; :func:`render_text` turns it into the text that
``labelwise inspect`` prints. numpy only; no Keras, no matplotlib.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["summarize", "render_text", "cooccurrence", "RARE_POSITIVES", "DEFAULT_GROUP_COLUMNS"]

#: Labels with fewer positives than this get a warning: their AUC and threshold are unstable.
RARE_POSITIVES = 50
DEFAULT_GROUP_COLUMNS = ("Patient ID", "patient_id", "PatientID", "patient", "subject_id", "case_id")


def cooccurrence(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``counts[a, b]`` = rows where labels a and b are both 1 (diagonal = positives of a);
    ``cond[a, b]`` = P(b | a) = counts[a, b] / counts[a, a] (NaN when a has no positive)."""
    m = np.asarray(y, dtype=np.float64)
    counts = (m.T @ m).round().astype(np.int64)
    diag = np.diag(counts).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cond = counts / np.where(diag > 0, diag, np.nan)[:, None]
    return counts, cond


def summarize(table, group_column: str | None = None, *, top_pairs: int = 10) -> dict[str, Any]:
    """Summary of a :class:`~labelwise.labels.tables.LabelTable` (JSON-ready).

    ``group_column=None`` uses the first of :data:`DEFAULT_GROUP_COLUMNS` present ("Patient ID").
    Keys: ``rows``, ``labels``, ``schema``, ``prevalence`` (per label: count, percent,
    neg_pos_ratio = negatives / positives), ``labels_per_image`` (histogram of the number of true
    labels per row, all columns), ``independent_per_image``, ``cooccurrence`` (counts and
    conditional P(column | row), full matrices), ``top_pairs``, ``groups``, ``none_label``,
    ``all_negative_share``, ``warnings``, ``notes``, ``known`` (per label: known and unknown
    rows; counts, percent and ratios are over the known rows), ``implications`` (child -> parents)
    and ``implication_tree`` (text lines).
    """
    schema = table.schema
    y = np.asarray(table.y)
    n = int(y.shape[0])
    labels = list(schema.labels)
    known = np.asarray(getattr(table, "known", None) if getattr(table, "known", None) is not None
                       else np.ones(y.shape, dtype=bool))
    pos = (y.astype(bool) & known).sum(axis=0).astype(np.int64)
    n_known = known.sum(axis=0).astype(np.int64)
    prevalence = {}
    for j, name in enumerate(labels):
        p, nk = int(pos[j]), int(n_known[j])
        # Shares are over the rows where the label is known.
        prevalence[name] = {
            "count": p,
            "percent": 100.0 * p / nk if nk else float("nan"),
            "neg_pos_ratio": (nk - p) / p if p else None,
        }
    per_row = y.sum(axis=1).astype(np.int64)
    hist = np.bincount(per_row)
    n_ind = len(schema.independent)
    ind_hist = np.bincount(y[:, :n_ind].sum(axis=1).astype(np.int64)) if n_ind else np.zeros(0, np.int64)
    counts, cond = cooccurrence(y)
    pairs = []
    for a in range(len(labels)):
        for b in range(a + 1, len(labels)):
            if counts[a, b] > 0:
                expected = pos[a] * pos[b] / n if n else float("nan")
                pairs.append({
                    "a": labels[a], "b": labels[b], "count": int(counts[a, b]),
                    "p_b_given_a": float(cond[a, b]), "p_a_given_b": float(cond[b, a]),
                    "lift": float(counts[a, b] / expected) if expected else None,
                })
    pairs.sort(key=lambda d: (-d["count"], d["a"], d["b"]))

    warnings: list[str] = []
    empty = [name for name in labels if prevalence[name]["count"] == 0]
    if empty:
        warnings.append(f"{', '.join(map(repr, empty))}: no positive row, so it cannot be trained or evaluated")
    rare = sorted((prevalence[name]["count"], name) for name in labels if 0 < prevalence[name]["count"] < RARE_POSITIVES)
    if rare:
        listed = ", ".join(f"{name} {c}" for c, name in rare)
        warnings.append(f"{len(rare)} label(s) with fewer than {RARE_POSITIVES} positive rows ({listed}): their AUC "
                        "and threshold will be unstable (wide confidence intervals); merge them or collect more")
    all_negative = None
    if n_ind:
        all_negative = float((y[:, :n_ind].sum(axis=1) == 0).mean()) if n else float("nan")
    none_info = None
    if schema.none:
        j = schema.none_index
        with_others = int((y[:, j].astype(bool) & (np.delete(y, j, axis=1).sum(axis=1) > 0)).sum())
        proposed = any("implied 'none' label" in note for note in schema.notes)
        none_info = {"label": schema.none, "source": "inferred" if proposed else "declared",
                     "count": int(pos[j]), "cooccurs": with_others > 0, "rows_with_other_labels": with_others}
    elif schema.is_plain_multilabel and len(labels) > 1 and n and (per_row == 1).all():
        # Every label is then a "loner"; what the table looks like is one class per image.
        if not any("exclusive group" in note for note in schema.notes):
            warnings.append("every row has exactly one label: if each image has exactly one of them, declare "
                            "them as one exclusive group in a schema file so the model gets a softmax")
    else:
        # A label that never co-occurs may be a "none" label in disguise.
        loners = [labels[a] for a in range(len(labels))
                  if pos[a] and counts[a].sum() - counts[a, a] == 0 and len(labels) > 1]
        if loners and schema.is_plain_multilabel:
            warnings.append(f"{', '.join(map(repr, loners))} never co-occur(s) with another label; if it means "
                            "'no finding', declare it as the schema's none label")
    if all_negative and schema.none is None and schema.is_plain_multilabel:
        warnings.append(f"{100 * all_negative:.1f}% of rows have every label negative")

    groups = None
    col = group_column
    if col is None:
        col = next((c for c in DEFAULT_GROUP_COLUMNS if c in table.extra.columns), None)
    if col is not None:
        g = table.groups(col)
        _, inverse, sizes = np.unique(g.astype(str), return_inverse=True, return_counts=True)
        groups = {
            "column": col, "n_groups": int(len(sizes)), "min_rows": int(sizes.min()),
            "median_rows": float(np.median(sizes)), "mean_rows": float(sizes.mean()), "max_rows": int(sizes.max()),
            "groups_with_one_row": int((sizes == 1).sum()),
        }
        # Positives per label that share a patient: what a row-level split would leak.
        groups["groups_per_label"] = {
            name: int(np.unique(inverse[y[:, j] == 1]).size) for j, name in enumerate(labels)
        }
    from .structure import implication_tree

    return {
        "source": table.source,
        "format": getattr(table, "format", ""),
        "rows": n,
        "n_labels": len(labels),
        "labels": labels,
        "schema": schema.to_dict(),
        "prevalence": prevalence,
        "labels_per_image": {str(i): int(v) for i, v in enumerate(hist) if v},
        "independent_per_image": {str(i): int(v) for i, v in enumerate(ind_hist) if v},
        "cooccurrence": {"labels": labels, "counts": counts.tolist(),
                         "p_column_given_row": [[None if v != v else float(v) for v in r] for r in cond]},
        "top_pairs": pairs[:top_pairs],
        "n_cooccurring_pairs": len(pairs),
        "groups": groups,
        "none_label": none_info,
        "all_negative_share": all_negative,
        "warnings": warnings,
        "notes": list(schema.notes) + list(getattr(table, "notes", ())),
        "known": {name: {"known": int(n_known[j]), "unknown": int(n - n_known[j])} for j, name in enumerate(labels)},
        "implications": {k: list(v) for k, v in schema.implies.items()},
        "implication_tree": implication_tree(schema),
    }


def render_text(summary: dict[str, Any]) -> str:
    """The human-readable form of :func:`summarize`'s output (what ``labelwise inspect`` prints)."""
    s = summary
    out: list[str] = []
    sch = s["schema"]
    out.append(f"{s['source']}: {s['rows']:,} rows, {s['n_labels']} labels"
               + (f" (format {s['format']})" if s.get("format") else ""))
    desc = [f"{len(sch.get('independent', []))} independent"]
    for gname, members in sch.get("exclusive", {}).items():
        desc.append(f"exclusive group {gname!r} ({len(members)})")
    for gname, members in sch.get("at_most_one", {}).items():
        desc.append(f"at-most-one group {gname!r} ({len(members)})")
    if sch.get("derived"):
        desc.append(f"{len(sch['derived'])} derived ({', '.join(sch['derived'])})")
    if sch.get("none"):
        desc.append(f"none label {sch['none']!r}")
    out.append("schema: " + ", ".join(desc))
    out.append("")
    width = max(len(x) for x in s["labels"] + ["label"])
    known = s.get("known") or {}
    show_known = any(v["unknown"] for v in known.values())
    out.append(f"{'label':<{width}}  {'positives':>9}  {'%':>6}  {'neg:pos':>8}"
               + ("  known rows (% and ratio over them)" if show_known else ""))
    rows = sorted(s["prevalence"].items(), key=lambda kv: -kv[1]["count"])
    for name, p in rows:
        ratio = "-" if p["neg_pos_ratio"] is None else f"{p['neg_pos_ratio']:.1f}"
        flag = "  <- rare" if 0 < p["count"] < RARE_POSITIVES else ("  <- none" if p["count"] == 0 else "")
        k = f"  {known[name]['known']:,} known, {known[name]['unknown']:,} unknown" if show_known else ""
        out.append(f"{name:<{width}}  {p['count']:>9,}  {p['percent']:>6.2f}  {ratio:>8}{k}{flag}")
    if s.get("implication_tree"):
        out.append("")
        out.append("Implications (a child implies the label it is listed under):")
        out.extend("  " + line for line in s["implication_tree"])
    out.append("")
    out.append("labels per image: " + "  ".join(f"{k}:{v:,}" for k, v in s["labels_per_image"].items()))
    if s["schema"].get("none"):
        out.append("findings per image (without the none label): "
                   + "  ".join(f"{k}:{v:,}" for k, v in s["independent_per_image"].items()))
    if s["top_pairs"]:
        out.append("")
        out.append(f"most frequent label pairs (of {s['n_cooccurring_pairs']} that co-occur; full matrix: "
                   "--json or --plot):")
        pw = max(len(f"{d['a']} + {d['b']}") for d in s["top_pairs"])
        out.append(f"  {'pair':<{pw}}  {'rows':>6}  {'P(b|a)':>6}  {'P(a|b)':>6}  {'lift':>5}")
        for d in s["top_pairs"]:
            lift = "-" if d["lift"] is None else f"{d['lift']:.2f}"
            out.append(f"  {d['a'] + ' + ' + d['b']:<{pw}}  {d['count']:>6,}  {d['p_b_given_a']:>6.3f}  "
                       f"{d['p_a_given_b']:>6.3f}  {lift:>5}")
    g = s["groups"]
    if g:
        out.append("")
        out.append(f"groups ({g['column']!r}): {g['n_groups']:,}; rows per group min {g['min_rows']}, median "
                   f"{g['median_rows']:g}, mean {g['mean_rows']:.2f}, max {g['max_rows']}; "
                   f"{g['groups_with_one_row']:,} with a single row")
        if g["max_rows"] > 1:
            out.append("  split by this column (labelwise split --group-column ...) so no group is in two splits")
    nl = s["none_label"]
    if nl:
        how = "inferred, not declared" if nl["source"] == "inferred" else "declared in the schema"
        co = (f"co-occurs with another label on {nl['rows_with_other_labels']:,} rows" if nl["cooccurs"]
              else "never co-occurs with another label")
        out.append("")
        out.append(f"none label {nl['label']!r} ({how}): {nl['count']:,} rows, {co}")
    if s["all_negative_share"] is not None:
        out.append(f"rows with no independent label true: {100 * s['all_negative_share']:.2f}%")
    if s["warnings"] or s["notes"]:
        out.append("")
    for w in s["warnings"]:
        out.append(f"warning: {w}")
    for note in s["notes"]:
        out.append(f"note: {note}")
    return "\n".join(out) + "\n"
