"""Checks of a label schema's structure sections and of target matrices against a schema.

:func:`check_structure` validates ``[labels.implies]``, ``[labels.derived]``,
``[labels.at_most_one]`` and ``[labels.unknown]`` when a :class:`~labelwise.schema.LabelSchema`
is built; :func:`check_matrix` is :meth:`LabelSchema.validate`. The rules themselves are
described in :mod:`labelwise.labels.structure`. numpy only; no Keras.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from ..errors import SchemaError, SchemaViolation, where
from .structure import _cols

if TYPE_CHECKING:  # pragma: no cover
    from .schema import LabelSchema

#: What an unknown cell trains as: masked, 1, or 0.
POLICIES = ("ignore", "positive", "negative")

__all__ = ["POLICIES", "check_structure", "check_matrix", "infer_schema", "structure_fault", "sections_from_dict", "sections_to_dict",
           "sections_to_toml"]


def _did_you_mean(name: str, known: Sequence[str], where: str) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{where} names unknown label {name!r}{hint} (the schema's labels are {list(known)})"


def _find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle ``[a, b, ..., a]`` in ``child -> parents``, or None (iterative DFS, three colours)."""
    colour: dict[str, int] = {}
    for start in graph:
        if colour.get(start):
            continue
        stack = [(start, iter(graph.get(start, ())))]
        path = [start]
        colour[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                colour[node] = 2
                stack.pop()
                path.pop()
            elif colour.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not colour.get(nxt):
                colour[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(graph.get(nxt, ()))))
    return None


def check_structure(schema: "LabelSchema", implies: Any, values: Any, policy: Any):
    """Validate the structure sections of ``schema``; returns ``(implies, values, policy)`` normalised.

    Refused, with a :class:`SchemaError` naming the label: unknown names (did-you-mean), a cycle
    of implications, a parent that is not independent, a derived label whose sources are not all
    independent labels or all members of one group, a group name used twice, a policy for a label
    that does not exist or a positive/negative policy for a label that is not independent, unknown
    values that read as 0 or 1.
    """
    labels = schema.labels
    groups = {**schema.exclusive}
    for name in schema.at_most_one:
        if name in groups:
            raise SchemaError(f"group name {name!r} is both an exclusive and an at-most-one group; give them different "
                              "names")
        groups[name] = schema.at_most_one[name]
    member_of = {m: g for g, ms in groups.items() for m in ms}
    independent = set(schema.independent)

    # ---- derived
    for d, srcs in schema.derived.items():
        for x in srcs:
            if x not in labels:
                raise SchemaError(_did_you_mean(x, labels, f"derived label {d!r}"))
            if x in schema.derived or x == schema.none:
                raise SchemaError(f"derived label {d!r} is derived from {x!r}, which is derived itself; list the "
                                  "independent labels or group members it stands for instead (derived labels over "
                                  "derived labels are not supported)")
        kinds = {("independent" if x in independent else f"group {member_of[x]!r}") for x in srcs}
        if len(kinds) > 1:
            raise SchemaError(f"derived label {d!r} mixes sources from {sorted(kinds)}; a derived label is any_of "
                              "independent labels, or any_of members of one group (its score is then exact), not a "
                              "mix: this is not supported -- declare two derived labels, or make them independent")
        if len(set(srcs)) != len(srcs):
            raise SchemaError(f"derived label {d!r} lists a source twice: {list(srcs)}")

    # ---- implies
    if not isinstance(implies, Mapping):
        raise SchemaError(f"implies must map each child to its parents, e.g. Viral = ['Pneumonia']; got {implies!r}")
    graph: dict[str, tuple[str, ...]] = {}
    for child, parents in dict(implies).items():
        child = str(child)
        if isinstance(parents, str):
            parents = [parents]
        if not isinstance(parents, (list, tuple)) or not parents:
            raise SchemaError(f"implies: {child!r} must map to a list of parent labels, got {parents!r}")
        if child not in labels:
            raise SchemaError(_did_you_mean(child, labels, "[labels.implies]"))
        if child in schema.derived or child == schema.none:
            raise SchemaError(f"implies: {child!r} is {'derived' if child in schema.derived else 'the none label'}; "
                              "only independent labels and group members can be children (a derived label follows "
                              "its sources)")
        ps = []
        for parent in parents:
            if not isinstance(parent, str) or parent not in labels:
                raise SchemaError(_did_you_mean(str(parent), labels, f"implies: {child!r}"))
            if parent not in independent:
                what = ("a derived label" if parent in schema.derived else "the none label" if parent == schema.none
                        else f"a member of group {member_of[parent]!r}")
                raise SchemaError(f"implies: {child!r} -> {parent!r}: the parent is {what}; a parent must be an "
                                  "independent label (the head raises a parent's sigmoid to its children's scores, "
                                  "which a softmax member or a computed label cannot take)")
            ps.append(parent)
        if len(set(ps)) != len(ps):
            raise SchemaError(f"implies: {child!r} lists a parent twice: {ps}")
        graph[child] = tuple(ps)
    cycle = _find_cycle(graph)
    if cycle:
        raise SchemaError(f"implications form a cycle: {' -> '.join(cycle)}; a child implies its parents, so no "
                          "label may imply itself, directly or through others")

    # ---- unknown
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise SchemaError(f"[labels.unknown] values must be a list of cell values, got {values!r}")
    vals = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise SchemaError(f"[labels.unknown] values holds {v!r}; give cell values as strings, e.g. \"-1\"")
        v = str(v).strip() if not isinstance(v, float) else f"{v:g}"
        if v in ("0", "1", "0.0", "1.0"):
            raise SchemaError(f"[labels.unknown] values holds {v!r}, which is a known 0/1 value; unknown values must "
                              "differ from 0 and 1")
        vals.append(v)
    if not isinstance(policy, Mapping):
        raise SchemaError(f"[labels.unknown] policy must be a table, got {policy!r}")
    pol: dict[str, str] = {}
    for label, p in dict(policy).items():
        label = str(label)
        if p not in POLICIES:
            raise SchemaError(f"[labels.unknown] policy for {label!r} is {p!r}; choose one of {list(POLICIES)}")
        if label != "default":
            if label not in labels:
                raise SchemaError(_did_you_mean(label, labels, "[labels.unknown] policy"))
            if label not in independent and p != "ignore":
                what = ("derived" if label in schema.derived else "the none label" if label == schema.none
                        else f"a member of group {member_of[label]!r}")
                raise SchemaError(f"[labels.unknown] policy {label} = {p!r}: {label!r} is {what}; only independent "
                                  "labels take positive/negative (filling a group member would break its group, and a "
                                  "computed label follows its sources), so its unknown cells are ignored")
        pol[label] = p
    if pol and not vals:
        raise SchemaError("[labels.unknown] has a policy but no values; say which cell values mean 'not known', "
                          'e.g. values = ["", "-1"]')
    return graph, tuple(vals), pol


def _sources(name: object, spec: object) -> tuple[str, ...]:
    """The sources of a derived label from ``{"any_of": [...]}`` (or a plain list)."""
    if isinstance(spec, Mapping):
        other = set(spec) - {"any_of"}
        if other:
            raise SchemaError(f"derived label {name!r}: only any_of is supported, not {sorted(other)}; write "
                              f"{name} = {{ any_of = [...] }}")
        if "any_of" not in spec:
            raise SchemaError(f"derived label {name!r} needs any_of = [sources]")
        spec = spec["any_of"]
    if isinstance(spec, str) or not isinstance(spec, (list, tuple)):
        raise SchemaError(f"derived label {name!r}: any_of must be a list of labels, got {spec!r}")
    srcs = tuple(_label_name(x, f"derived label {name!r}") for x in spec)
    if not srcs:
        raise SchemaError(f"derived label {name!r} has an empty any_of; give at least one source label")
    return srcs


def _twice_message(label: str, first: str, second: str) -> str:
    roles = {first, second}
    if "derived" in roles and "independent" in roles:
        return (f"label {label!r} is both derived and independent; a derived label is computed from its sources, "
                "never a free output, so remove it from 'independent'")
    if any(r.startswith("at-most-one") for r in roles) and any(r.startswith("exclusive") for r in roles):
        return (f"label {label!r} is in both {first} and {second}; an at-most-one group may not share a member "
                "with an exactly-one (exclusive) group, since the two softmaxes would disagree on it")
    return f"label {label!r} is declared twice ({first} and {second}); each label has one role"



def sections_from_dict(data: Mapping[str, Any], source: str | None) -> dict[str, Any]:
    """The structure keyword arguments of :class:`LabelSchema` from its dict/TOML form
    (``implies``, ``derived``, ``at_most_one``, ``unknown``); missing sections are empty."""
    tables = {}
    for key in ("implies", "derived", "at_most_one"):
        value = data.get(key, {})
        if not isinstance(value, Mapping):
            raise SchemaError(f"{where(source)}'{key}' must be a table ([labels.{key}]), got {value!r}")
        tables[key] = dict(value)
    unknown_section = data.get("unknown", {})
    if not isinstance(unknown_section, Mapping):
        raise SchemaError(f"{where(source)}'unknown' must be a table with 'values' and 'policy', got "
                          f"{unknown_section!r}")
    bad = set(unknown_section) - {"values", "policy"}
    if bad:
        raise SchemaError(f"{where(source)}unknown key(s) {sorted(bad)} in [labels.unknown]; it takes 'values' "
                          "(cell values that mean 'not known') and 'policy'")
    values = unknown_section.get("values", [])
    policy = unknown_section.get("policy", {})
    if isinstance(values, str):
        raise SchemaError(f"{where(source)}[labels.unknown] values must be a list, e.g. values = [\"\", \"-1\"]")
    if isinstance(policy, str):
        policy = {"default": policy}
    if not isinstance(policy, Mapping):
        raise SchemaError(f"{where(source)}[labels.unknown] policy must map labels (and 'default') to one of "
                          f"{list(POLICIES)}, got {policy!r}")
    return {"implies": tables["implies"], "derived": tables["derived"], "at_most_one": tables["at_most_one"],
            "unknown_values": tuple(values), "unknown_policy": dict(policy)}


def sections_to_dict(schema: "LabelSchema") -> dict[str, Any]:
    """The structure sections of ``schema.to_dict()`` (only those that are declared)."""
    d: dict[str, Any] = {}
    if schema.implies:
        d["implies"] = {k: list(v) for k, v in schema.implies.items()}
    if schema.derived:
        d["derived"] = {k: {"any_of": list(v)} for k, v in schema.derived.items()}
    if schema.at_most_one:
        d["at_most_one"] = {k: list(v) for k, v in schema.at_most_one.items()}
    if schema.unknown_values or schema.unknown_policy:
        d["unknown"] = {"values": list(schema.unknown_values), "policy": dict(schema.unknown_policy)}
    return d


def sections_to_toml(schema: "LabelSchema") -> list[str]:
    """TOML lines of the structure sections (``[labels.implies]`` ... ``[labels.unknown]``)."""
    lines: list[str] = []
    for key, table in (("implies", schema.implies), ("at_most_one", schema.at_most_one)):
        if table:
            lines += ["", f"[labels.{key}]"]
            lines += [f"{_toml_str(k)} = {_toml_list(v)}" for k, v in table.items()]
    if schema.derived:
        lines += ["", "[labels.derived]"]
        lines += [f"{_toml_str(k)} = {{ any_of = {_toml_list(v)} }}" for k, v in schema.derived.items()]
    if schema.unknown_values or schema.unknown_policy:
        lines += ["", "[labels.unknown]", f"values = {_toml_list(schema.unknown_values)}"]
        if schema.unknown_policy:
            pol = ", ".join(f"{_toml_str(k)} = {_toml_str(v)}" for k, v in schema.unknown_policy.items())
            lines.append(f"policy = {{ {pol} }}")
    return lines


def check_matrix(schema: "LabelSchema", matrix: np.ndarray, *, known: np.ndarray | None = None,
                 row_names: Sequence[object] | None = None, source: str | None = None) -> None:
    """The body of :meth:`LabelSchema.validate` (see there): raise :class:`SchemaViolation`
    naming the first row that breaks a rule of ``schema``."""
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[1] != schema.n_labels:
        raise SchemaViolation(
            f"{where(source)}expected a matrix with {schema.n_labels} columns {list(schema.labels)}, got shape {m.shape}"
        )

    def name(r: int) -> object:
        return row_names[r] if row_names is not None else r

    bad = np.flatnonzero(~np.isin(m, (0, 1)).all(axis=1))
    if bad.size:
        r = int(bad[0])
        cols = [schema.labels[c] for c in np.flatnonzero(~np.isin(m[r], (0, 1)))]
        raise SchemaViolation(
            f"{where(source, name(r))}labels must be 0 or 1; got {m[r][~np.isin(m[r], (0, 1))].tolist()} "
            f"for {cols}" + _more(bad.size)
        )
    k = np.ones(m.shape, dtype=bool) if known is None else np.asarray(known, dtype=bool)
    n_ind = len(schema.independent)
    if schema.none:
        any_ind = (m[:, :n_ind].astype(bool) & k[:, :n_ind]).any(axis=1)
        none_col = m[:, schema.none_index].astype(bool) & k[:, schema.none_index]
        all_known = k[:, :n_ind].all(axis=1) & k[:, schema.none_index]
        clash = np.flatnonzero(none_col & any_ind)
        missing = np.flatnonzero(~none_col & ~any_ind & all_known)
        if clash.size or missing.size:
            # Name the first bad row; count only rows with the same fault as "like this".
            if clash.size and (not missing.size or clash[0] < missing[0]):
                r, same, other = int(clash[0]), clash.size, missing.size
                found = [schema.labels[c] for c in np.flatnonzero(m[r, :n_ind])]
                msg = (f"{schema.none!r} is true together with {', '.join(map(repr, found))}; "
                       f"{schema.none!r} means no independent label is true")
                other_msg = f"{other} row(s) with no label true and {schema.none!r} = 0"
            else:
                r, same, other = int(missing[0]), missing.size, clash.size
                msg = (f"no independent label is true but {schema.none!r} is 0; "
                       f"a row with no finding must have {schema.none!r} = 1")
                other_msg = f"{other} row(s) with {schema.none!r} true beside another label"
            raise SchemaViolation(f"{where(source, name(r))}{msg}" + _more(same)
                                  + (f"; also {other_msg}" if other else ""))
    start = n_ind
    for group, members in schema.exclusive.items():
        kb = k[:, start : start + len(members)]
        counts = (m[:, start : start + len(members)] * kb).sum(axis=1)
        several, none_on = np.flatnonzero(counts > 1), np.flatnonzero((counts == 0) & kb.all(axis=1))
        if several.size or none_on.size:
            if none_on.size and (not several.size or none_on[0] < several[0]):
                r, same, other = int(none_on[0]), none_on.size, several.size
                msg = (f"no member of exclusive group {group!r} is true; exactly one of "
                       f"{list(members)} must be")
                other_msg = f"{other} row(s) with several members true"
            else:
                r, same, other = int(several[0]), several.size, none_on.size
                on = [members[c] for c in np.flatnonzero(m[r, start : start + len(members)])]
                msg = (f"{len(on)} members of exclusive group {group!r} are true ({', '.join(on)}); "
                       "exactly one may be")
                other_msg = f"{other} row(s) with no member true"
            raise SchemaViolation(f"{where(source, name(r))}{msg}" + _more(same)
                                  + (f"; also {other_msg}" if other else ""))
        start += len(members)
    if schema.has_structure:
        fault = structure_fault(m, k, schema)
        if fault is not None:
            rows, msg = fault
            raise SchemaViolation(f"{where(source, name(int(rows[0])))}{msg}" + _more(rows.size))



def structure_fault(m: np.ndarray, known: np.ndarray, schema: "LabelSchema") -> tuple[np.ndarray, str] | None:
    """The first broken structure rule of a full 0/1 target matrix: ``(bad rows, message about
    the first)``, or None. Unknown cells break no rule."""
    on = (np.asarray(m) != 0) & known
    off = (np.asarray(m) == 0) & known
    for b in schema.layout:
        if b.kind == "at_most_one":
            k = on[:, b.start : b.stop].sum(axis=1)
            rows = np.flatnonzero(k > 1)
            if rows.size:
                names = [b.labels[i] for i in np.flatnonzero(on[rows[0], b.start : b.stop])]
                return rows, f"{len(names)} members of at-most-one group {b.name!r} are true ({', '.join(names)}); at " \
                             "most one may be"
    pairs = [(child, p) for child, parents in schema.implies.items() for p in parents]
    if pairs:
        broken = np.stack([on[:, schema.labels.index(c)] & off[:, schema.labels.index(p)] for c, p in pairs], axis=1)
        rows = np.flatnonzero(broken.any(axis=1))
        if rows.size:
            child, p = pairs[int(np.argmax(broken[rows[0]]))]
            return rows, (f"{child!r} is true but its parent {p!r} is not ({child!r} implies {p!r}); add {p!r}, "
                          "or read the table with repair_implications=True (--repair-implications) to add it")
    for j, (d, srcs) in enumerate(schema.derived.items()):
        col = schema.n_free + j
        cols = _cols(schema, srcs)
        any_on = on[:, cols].any(axis=1)
        all_off = off[:, cols].all(axis=1)
        rows = np.flatnonzero((on[:, col] & all_off) | (off[:, col] & any_on))
        if rows.size:
            r = rows[0]
            if on[r, col]:
                msg = f"derived label {d!r} is true but none of its sources {list(srcs)} is"
            else:
                src = [srcs[i] for i in np.flatnonzero(on[r, cols])]
                msg = f"derived label {d!r} is false but its source {src[0]!r} is true"
            return rows, msg + f" ({d!r} = any of {list(srcs)}); fix the cell or leave the {d!r} column out (it is computed)"
    return None




def infer_schema(cls: type, matrix: np.ndarray, names: Sequence[str], *, propose_none: bool = True) -> "LabelSchema":
    """The body of :meth:`LabelSchema.infer` (see there)."""
    m = np.asarray(matrix) != 0
    names = [str(n) for n in names]
    none = None
    notes: list[str] = []
    if propose_none and len(names) > 1 and m.shape[0]:
        row_sum = m.sum(axis=1)
        if (row_sum == 1).all():
            # Every label then "never co-occurs and is true where no other is": that is a
            # single-label (multi-class) table, not a table with a "none" label.
            notes.append(
                "every row has exactly one label, so no 'none' label is proposed; if each image has "
                "exactly one of these labels, declare them as one exclusive group in a schema file "
                "([labels.exclusive] class = [...]) so the model gets a softmax"
            )
        else:
            candidates = [
                label for j, label in enumerate(names)
                if m[:, j].any() and np.array_equal(m[:, j], (row_sum - m[:, j]) == 0)
            ]
            # Two or more candidates (each alone on its rows) are ambiguous: propose none.
            if len(candidates) == 1:
                none = candidates[0]
                notes.append(
                    f"{none!r} never co-occurs with another label and is true on every row without "
                    f"one, so it is taken as the implied 'none' label (true exactly when no other label "
                    f"is); declare none = {none!r} in a schema file to make this explicit"
                )
    independent = tuple(n for n in names if n != none)
    return cls(independent, {}, none, notes=tuple(notes))


# ---------------------------------------------------------------- helpers (schema.py uses them too)
def _label_name(x: object, role: str) -> str:
    if not isinstance(x, str):
        raise SchemaError(f"labels must be strings; got {x!r} ({type(x).__name__}) in {role}")
    s = x.strip()
    if not s:
        raise SchemaError(f"empty label name in {role}")
    if s != x:
        raise SchemaError(f"label {x!r} in {role} has leading or trailing spaces; write {s!r}")
    return s

def _more(n: int) -> str:
    return f" ({n - 1} more row(s) like this)" if n > 1 else ""

def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

def _toml_list(items: Iterable[str]) -> str:
    return "[" + ", ".join(_toml_str(i) for i in items) + "]"
