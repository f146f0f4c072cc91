"""The label schema: which labels are independent, which are mutually exclusive, which
imply others, which are derived, which may be unknown, and which one is the implied "none".

A schema is declared once and every later part obeys it: the model head (a sigmoid per
independent label, a softmax per exclusive group), the loss, the decisions and the report.

Column layout
-------------
``schema.labels`` is the order of the columns of every target or score matrix::

    independent ... | exclusive group members ... | at-most-one group members ... | derived ... | none

``schema.free_labels`` (independent, exclusive and at-most-one members) are the columns the
head's Dense layer learns. ``schema.output_labels`` (the first ``schema.n_outputs`` columns)
are what a model head outputs: the free columns followed by the derived labels, which the
head computes from their sources (never free outputs). The ``none`` column, when declared, is
derived after the head: 1 exactly when no independent label is 1. With no derived labels and
no at-most-one groups this is the old layout, column for column.

The TOML form::

    [labels]
    independent = ["Pneumonia", "Viral", "Bacterial", "Effusion"]
    none = "No Finding"

    [labels.exclusive]              # exactly one member per image (softmax)
    view = ["PA", "AP"]

    [labels.implies]                # child = [parents]; no cycle
    Viral = ["Pneumonia"]

    [labels.derived]                # computed, never a free output
    Infection = { any_of = ["Viral", "Bacterial"] }

    [labels.at_most_one]            # softmax over members + an implicit "absent"
    severity = ["mild", "moderate", "severe"]

    [labels.unknown]                # cell values that mean "not known"
    values = ["", "-1", "uncertain"]
    policy = { default = "ignore", Effusion = "positive" }   # ignore | positive | negative

The rules of implications, derived labels, at-most-one groups and unknown cells (and their
numpy math) are in :mod:`labelwise.labels.structure`.

This module imports neither Keras nor TensorFlow.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..errors import SchemaError, SchemaViolation, where
from ..io import write_text
from .schema_rules import POLICIES, _label_name, _more, _sources, _toml_list, _toml_str, _twice_message

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["LabelSchema", "HeadBlock", "load_schema", "POLICIES"]

DEFAULT_SEPARATOR = "|"
_KEYS = ("independent", "exclusive", "none", "implies", "derived", "at_most_one", "unknown")


@dataclass(frozen=True)
class HeadBlock:
    """A contiguous block of model-output columns with one activation.

    ``kind`` is ``"sigmoid"`` (independent labels), ``"softmax"`` (one exclusive group),
    ``"at_most_one"`` (softmax over the members and an implicit "absent" whose logit is 0) or
    ``"derived"`` (computed from other columns; a sigmoid of its logit); columns ``start:stop``
    of the head output belong to it.
    """

    kind: str
    name: str
    start: int
    stop: int
    labels: tuple[str, ...]


@dataclass(frozen=True)
class LabelSchema:
    """Declared structure of the labels of one task.

    Parameters
    ----------
    independent: labels that each get their own sigmoid; any subset may be true.
    exclusive: group name -> members; exactly one member of each group is true per image.
    none: optional implied label, true exactly when no independent label is true.
    implies: child -> parents (a child true makes every parent true).
    derived: label -> ``{"any_of": [sources]}`` (or the list of sources).
    at_most_one: group name -> members; at most one member is true per image.
    unknown_values: table cell values that mean "not known".
    unknown_policy: ``{"default": policy, label: policy}`` with a policy of :data:`POLICIES`.
    """

    independent: tuple[str, ...] = ()
    exclusive: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    none: str | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)
    implies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    derived: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    at_most_one: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    unknown_values: tuple[str, ...] = ()
    unknown_policy: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        independent = tuple(_label_name(x, "independent") for x in self.independent)
        groups: dict[str, tuple[str, ...]] = {}
        for name, members in dict(self.exclusive).items():
            if isinstance(members, str):
                raise SchemaError(
                    f"exclusive group {name!r} must be a list of labels, not the string {members!r}"
                )
            members = tuple(_label_name(m, f"exclusive group {name!r}") for m in members)
            if len(members) < 2:
                raise SchemaError(
                    f"exclusive group {name!r} has {len(members)} member(s); a group needs at least 2 "
                    "(a single label that is always true carries no information)"
                )
            groups[str(name)] = members
        at_most_one = {}
        for name, members in dict(self.at_most_one).items():
            if isinstance(members, str):
                raise SchemaError(f"at-most-one group {name!r} must be a list of labels, not the string {members!r}")
            members = tuple(_label_name(m, f"at-most-one group {name!r}") for m in members)
            if len(members) < 1:
                raise SchemaError(f"at-most-one group {name!r} has no members")
            at_most_one[str(name)] = members
        derived = {str(k): _sources(k, v) for k, v in dict(self.derived).items()}
        none = None if self.none in (None, "") else _label_name(self.none, "none")
        if none is not None and not independent:
            raise SchemaError(
                f"none label {none!r} is declared but there are no independent labels: it is defined "
                "as 'no independent label is true', so declare the independent labels too"
            )
        seen: dict[str, str] = {}
        for label, role in (
            [(x, "independent") for x in independent]
            + [(m, f"exclusive group {g!r}") for g, ms in groups.items() for m in ms]
            + [(m, f"at-most-one group {g!r}") for g, ms in at_most_one.items() for m in ms]
            + [(d, "derived") for d in derived]
            + ([(none, "none")] if none else [])
        ):
            if label in seen:
                raise SchemaError(_twice_message(label, seen[label], role))
            seen[label] = role
        if not seen:
            raise SchemaError("the schema declares no labels; give at least one independent label or exclusive group")
        object.__setattr__(self, "independent", independent)
        object.__setattr__(self, "exclusive", groups)
        object.__setattr__(self, "none", none)
        object.__setattr__(self, "notes", tuple(self.notes))
        object.__setattr__(self, "at_most_one", at_most_one)
        object.__setattr__(self, "derived", derived)
        from .schema_rules import check_structure

        implies, values, policy = check_structure(self, self.implies, self.unknown_values, self.unknown_policy)
        object.__setattr__(self, "implies", implies)
        object.__setattr__(self, "unknown_values", values)
        object.__setattr__(self, "unknown_policy", policy)

    # ------------------------------------------------------------------ layout
    @property
    def free_labels(self) -> tuple[str, ...]:
        """Labels the head learns freely: independent, exclusive and at-most-one members."""
        return (self.independent + tuple(m for ms in self.exclusive.values() for m in ms)
                + tuple(m for ms in self.at_most_one.values() for m in ms))

    @property
    def n_free(self) -> int:
        """Width of the head's Dense layer (``len(free_labels)``)."""
        return len(self.free_labels)

    @property
    def output_labels(self) -> tuple[str, ...]:
        """Labels a model head outputs, in column order (everything but ``none``): the free
        labels, then the derived labels (computed by the head from their sources)."""
        return self.free_labels + tuple(self.derived)

    @property
    def has_structure(self) -> bool:
        """True when the schema declares implications, derived labels or at-most-one groups."""
        return bool(self.implies or self.derived or self.at_most_one)

    @property
    def has_unknown(self) -> bool:
        """True when table cells may be unknown (``[labels.unknown] values``)."""
        return bool(self.unknown_values)

    def policy(self, label: str) -> str:
        """The unknown-cell policy of ``label``: its own, else the default (``ignore``).
        Group members, derived labels and the none label are always ``ignore``."""
        if label not in self.independent:
            return "ignore"
        return self.unknown_policy.get(label, self.unknown_policy.get("default", "ignore"))

    @property
    def labels(self) -> tuple[str, ...]:
        """All labels, in the column order of target and score matrices."""
        return self.output_labels + ((self.none,) if self.none else ())

    @property
    def n_labels(self) -> int:
        """Number of columns of a full target matrix (``len(labels)``)."""
        return len(self.labels)

    @property
    def n_outputs(self) -> int:
        """Number of model-head output columns (``len(output_labels)``)."""
        return len(self.output_labels)

    @property
    def none_index(self) -> int | None:
        """Column of the ``none`` label in ``labels``, or None."""
        return self.n_outputs if self.none else None

    @property
    def layout(self) -> tuple[HeadBlock, ...]:
        """Head blocks: one sigmoid block for the independent labels, one softmax block per group."""
        blocks = []
        if self.independent:
            blocks.append(HeadBlock("sigmoid", "independent", 0, len(self.independent), self.independent))
        start = len(self.independent)
        for name, members in self.exclusive.items():
            blocks.append(HeadBlock("softmax", name, start, start + len(members), members))
            start += len(members)
        for name, members in self.at_most_one.items():
            blocks.append(HeadBlock("at_most_one", name, start, start + len(members), members))
            start += len(members)
        if self.derived:
            blocks.append(HeadBlock("derived", "derived", start, start + len(self.derived), tuple(self.derived)))
        return tuple(blocks)

    @property
    def is_plain_multilabel(self) -> bool:
        """True when every label is independent (no groups, no none label, no structure)."""
        return not self.exclusive and self.none is None and not self.has_structure

    def index(self, label: str) -> int:
        """Column of ``label`` in ``labels``; a clear error names the known labels otherwise."""
        try:
            return self.labels.index(label)
        except ValueError:
            raise SchemaViolation(_unknown_label_message(label, self.labels)) from None

    def group_of(self, label: str) -> str | None:
        """Name of the exclusive or at-most-one group ``label`` belongs to, or None."""
        for name, members in {**self.exclusive, **self.at_most_one}.items():
            if label in members:
                return name
        return None

    # --------------------------------------------------------------- encoding
    def encode(
        self,
        rows: Iterable[str | Sequence[str]],
        *,
        sep: str = DEFAULT_SEPARATOR,
        row_names: Sequence[object] | None = None,
        source: str | None = None,
        validate: bool = True,
    ) -> np.ndarray:
        """Encode label lists (or ``sep``-joined strings) into an (n, n_labels) uint8 matrix.

        The ``none`` column is derived from the independent columns; a row that names the
        ``none`` label together with an independent label is a violation. An empty cell is an
        error (write the none label, or leave the row out). ``row_names`` (e.g. line numbers or
        image ids) and ``source`` (the file) name the offending row in error messages.
        """
        index = {label: i for i, label in enumerate(self.labels)}
        rows = list(rows)
        out = np.zeros((len(rows), self.n_labels), dtype=np.uint8)
        none_col = self.none_index
        explicit_none = np.zeros(len(rows), dtype=bool)
        n_free = self.n_free
        for r, row in enumerate(rows):
            name = row_names[r] if row_names is not None else r
            items = _split_cell(row, sep)
            if not items:
                raise SchemaViolation(
                    f"{where(source, name)}empty label cell; every row needs at least one label"
                    + (f" (write {self.none!r} for a row with no finding)" if self.none else "")
                )
            for item in items:
                col = index.get(item)
                if col is None:
                    raise SchemaViolation(f"{where(source, name)}{_unknown_label_message(item, self.labels)}")
                if col == none_col:
                    explicit_none[r] = True
                else:
                    out[r, col] = 1
        if none_col is not None:
            n_ind = len(self.independent)
            any_ind = out[:, :n_ind].any(axis=1)
            clash = np.flatnonzero(explicit_none & any_ind)
            if clash.size:
                r = int(clash[0])
                name = row_names[r] if row_names is not None else r
                found = [self.labels[c] for c in np.flatnonzero(out[r, :n_ind])]
                raise SchemaViolation(
                    f"{where(source, name)}{self.none!r} is given together with {', '.join(map(repr, found))}; "
                    f"{self.none!r} means no independent label is true, so remove one of them"
                    + _more(clash.size)
                )
            out[:, none_col] = ~any_ind
        if self.derived:
            from .structure import derive_decisions

            given = out[:, n_free : self.n_outputs].copy()
            computed = derive_decisions(out[:, :n_free], self)
            clash = np.flatnonzero((given > computed).any(axis=1))
            if clash.size:
                r = int(clash[0])
                name = row_names[r] if row_names is not None else r
                d = list(self.derived)[int(np.flatnonzero(given[r] > computed[r])[0])]
                raise SchemaViolation(
                    f"{where(source, name)}derived label {d!r} is given but none of its sources "
                    f"{list(self.derived[d])} is; {d!r} is computed as any of them, so add the source "
                    f"label or remove {d!r}" + _more(clash.size))
            out[:, n_free : self.n_outputs] = computed
        if validate:
            self.validate(out, row_names=row_names, source=source)
        return out

    def decode(self, matrix: np.ndarray) -> list[list[str]]:
        """Turn a 0/1 decision matrix over ``labels`` (or over ``output_labels``) back into label lists.

        A matrix over the output columns gets its ``none`` column derived first. Every value must
        be 0 or 1 (booleans too): scores or probabilities are refused, since reading any non-zero
        value as true would turn 0.01 into a positive; turn scores into decisions with
        :func:`labelwise.decide.decide`. Rows that break the schema (``none`` beside a finding,
        zero or several members of an exclusive group) raise :class:`SchemaViolation` naming the row.
        """
        m = np.asarray(matrix)
        if m.ndim != 2 or m.shape[1] not in (self.n_labels, self.n_outputs):
            raise SchemaViolation(
                f"cannot decode a matrix of shape {m.shape}: expected (n, {self.n_labels}) over the labels "
                f"{list(self.labels)}" + (f" or (n, {self.n_outputs}) over the head outputs" if self.none else "")
            )
        names = self.labels if m.shape[1] == self.n_labels else self.output_labels
        if m.dtype != bool:
            bad = ~np.isin(m, (0, 1))
            if bad.any():
                r, c = (int(v[0]) for v in np.nonzero(bad))
                value = m[r, c].item() if hasattr(m[r, c], "item") else m[r, c]
                raise SchemaViolation(
                    f"row {r}, label {names[c]!r}: decode takes 0/1 decisions, got {value!r}"
                    + (f" ({int(bad.sum()) - 1} more such value(s))" if bad.sum() > 1 else "")
                    + "; turn scores into decisions first with labelwise.decide.decide(scores, schema, "
                    "thresholds)"
                )
        m = (m != 0).astype(np.uint8)
        if m.shape[1] != self.n_labels:
            m = self.complete(m)
        self.validate(m)
        return [[self.labels[c] for c in np.flatnonzero(row)] for row in m]

    def complete(self, outputs: np.ndarray) -> np.ndarray:
        """Complete a binary (n, n_free) or (n, n_outputs) matrix to (n, n_labels).

        Derived labels are ``any_of`` their sources (recomputed when given); the ``none`` column
        is ``1 - max(independent columns)``. A matrix already complete is returned as is.
        """
        out = np.asarray(outputs)
        if self.derived and out.ndim == 2 and out.shape[1] in (self.n_free, self.n_outputs):
            from .structure import derive_decisions

            out = np.concatenate([out[:, : self.n_free], derive_decisions(out, self).astype(out.dtype)], axis=1)
        if self.none is None or out.shape[1] == self.n_labels:
            return out
        any_ind = (out[:, : len(self.independent)] != 0).any(axis=1)
        return np.concatenate([out, (~any_ind).astype(out.dtype)[:, None]], axis=1)

    def enforce(self, decisions: np.ndarray, scores: np.ndarray | None = None) -> np.ndarray:
        """Impose the structure on 0/1 decisions; (n, n_labels) uint8. See
        :func:`labelwise.labels.structure.enforce` (at most one, parents on, derived, none)."""
        from .structure import enforce

        return enforce(decisions, self, scores)

    def complete_scores(self, scores: np.ndarray) -> np.ndarray:
        """Append a ``none`` score to (n, n_outputs) probabilities: ``prod_i (1 - p_i)``.

        That is the probability that no independent label is true when the head's sigmoids are
        read as independent events; it ranks images for the none label's AUC. Scores over the
        free labels only (n, n_free) get their derived columns first
        (:func:`labelwise.labels.structure.derive_scores`).
        """
        s = np.asarray(scores, dtype=np.float64)
        if self.derived and s.ndim == 2 and s.shape[1] == self.n_free:
            from .structure import derive_scores

            s = np.concatenate([s, derive_scores(s, self)], axis=1)
        if self.none is None or s.shape[1] == self.n_labels:
            return s
        p_none = np.prod(1.0 - s[:, : len(self.independent)], axis=1)
        return np.concatenate([s, p_none[:, None]], axis=1)

    # -------------------------------------------------------------- validation
    def validate(
        self,
        matrix: np.ndarray,
        *,
        row_names: Sequence[object] | None = None,
        source: str | None = None,
        known: np.ndarray | None = None,
    ) -> None:
        """Check that every row of a full (n, n_labels) 0/1 matrix obeys the schema.

        Raises :class:`SchemaViolation` naming the first bad row (and how many more there are):
        values other than 0/1, the ``none`` label beside an independent label (or missing when no
        independent label is true), zero or several members of one exclusive group, several
        members of an at-most-one group, a child without its parent, a derived label that is not
        ``any_of`` its sources. ``known`` (same shape, bool): unknown cells break no rule.
        """
        from .schema_rules import check_matrix

        check_matrix(self, matrix, known=known, row_names=row_names, source=source)

    # ----------------------------------------------------------- construction
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> "LabelSchema":
        """Build from ``{"independent": [...], "exclusive": {...}, "none": ..., "implies": {...},
        "derived": {...}, "at_most_one": {...}, "unknown": {"values": [...], "policy": {...}}}``.

        A top-level ``{"labels": {...}}`` wrapper (the TOML layout) is accepted too; every key but
        one of ``independent``/``exclusive``/``at_most_one`` may be left out (dicts written before
        the structure keys existed load unchanged).
        """
        if not isinstance(data, Mapping):
            raise SchemaError(f"{where(source)}a schema must be a mapping, got {type(data).__name__}")
        if "labels" in data and isinstance(data["labels"], Mapping):
            data = data["labels"]
        unknown = set(data) - set(_KEYS)
        if unknown:
            import difflib

            hints = [f"{k!r} (did you mean {c[0]!r}?)" if (c := difflib.get_close_matches(k, _KEYS, n=1)) else repr(k)
                     for k in sorted(unknown)]
            raise SchemaError(
                f"{where(source)}unknown schema key(s) {', '.join(hints)}; the keys are "
                + ", ".join(repr(k) for k in _KEYS)
            )
        independent = data.get("independent", [])
        if isinstance(independent, str):
            raise SchemaError(f"{where(source)}'independent' must be a list of labels, not a string")
        exclusive = data.get("exclusive", {})
        if not isinstance(exclusive, Mapping):
            raise SchemaError(
                f"{where(source)}'exclusive' must map each group name to its members, "
                'e.g. exclusive = { view = ["PA", "AP"] }'
            )
        from .schema_rules import sections_from_dict

        sections = sections_from_dict(data, source)
        try:
            return cls(tuple(independent), dict(exclusive), data.get("none"), **sections)
        except SchemaError as e:
            if source:
                raise SchemaError(f"{where(source)}{e}") from None
            raise

    def to_dict(self) -> dict[str, Any]:
        """The plain-dict form: ``from_dict(s.to_dict()) == s``."""
        d: dict[str, Any] = {"independent": list(self.independent)}
        if self.exclusive:
            d["exclusive"] = {k: list(v) for k, v in self.exclusive.items()}
        if self.none:
            d["none"] = self.none
        from .schema_rules import sections_to_dict

        d.update(sections_to_dict(self))
        return d

    @classmethod
    def from_toml(cls, path: str | Path) -> "LabelSchema":
        """Read a schema TOML file (see the module docstring for the layout)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SchemaError(f"schema file {path} does not exist") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise SchemaError(f"{path}: not valid TOML ({e})") from None
        if "labels" not in data:
            raise SchemaError(f"{path}: no [labels] table; a schema file starts with [labels]")
        return cls.from_dict(data, source=str(path))

    def to_toml(self) -> str:
        """The TOML text of this schema."""
        lines = ["[labels]", f"independent = {_toml_list(self.independent)}"]
        if self.none:
            lines.append(f"none = {_toml_str(self.none)}")
        from .schema_rules import sections_to_toml

        if self.exclusive:
            lines += ["", "[labels.exclusive]"]
            lines += [f"{_toml_str(k)} = {_toml_list(v)}" for k, v in self.exclusive.items()]
        lines += sections_to_toml(self)
        return "\n".join(lines) + "\n"

    def save(self, path: str | Path) -> Path:
        """Write the TOML form to ``path`` atomically."""
        return write_text(path, self.to_toml())

    @classmethod
    def infer(cls, matrix: np.ndarray, names: Sequence[str], *, propose_none: bool = True) -> "LabelSchema":
        """Infer a schema from a 0/1 matrix whose columns are ``names``.

        Every label is independent, except that a label which never co-occurs with any other
        label and is true on every row where no other label is (ChestX-ray14's "No Finding")
        becomes the implied ``none`` label; ``schema.notes`` says so. No ``none`` is proposed when
        several labels qualify, or when every row has exactly one label (a multi-class table,
        where every label qualifies; the notes suggest an exclusive group instead).
        """
        from .schema_rules import infer_schema

        return infer_schema(cls, matrix, names, propose_none=propose_none)

    def __repr__(self) -> str:
        parts = [f"independent={list(self.independent)}"]
        if self.exclusive:
            parts.append(f"exclusive={ {k: list(v) for k, v in self.exclusive.items()} }")
        if self.none:
            parts.append(f"none={self.none!r}")
        for key in ("implies", "derived", "at_most_one"):
            if getattr(self, key):
                parts.append(f"{key}={ {k: list(v) for k, v in getattr(self, key).items()} }")
        if self.unknown_values:
            parts.append(f"unknown_values={list(self.unknown_values)}")
        if self.unknown_policy:
            parts.append(f"unknown_policy={dict(self.unknown_policy)}")
        return f"LabelSchema({', '.join(parts)})"

    def __hash__(self) -> int:
        return hash((self.independent, tuple(self.exclusive.items()), self.none, tuple(self.implies.items()),
                     tuple(self.derived.items()), tuple(self.at_most_one.items()), self.unknown_values,
                     tuple(sorted(self.unknown_policy.items()))))


#: Words that mean "no schema file: infer it from the table" (``--schema none``, ``schema = "auto"``).
NO_SCHEMA_WORDS = ("none", "auto", "infer", "")


def load_schema(spec: "LabelSchema | Mapping[str, Any] | str | Path | None") -> LabelSchema | None:
    """Accept a schema object, a dict, a TOML path, or None (returned as None).

    A string ``"none"``, ``"auto"``, ``"infer"`` or ``""`` (any case) that is not an existing file
    also gives None: the schema is then inferred from the table, as with no ``--schema`` at all.
    """
    if spec is None or isinstance(spec, LabelSchema):
        return spec
    if isinstance(spec, Mapping):
        return LabelSchema.from_dict(spec)
    if isinstance(spec, str) and spec.strip().lower() in NO_SCHEMA_WORDS and not Path(spec).is_file():
        return None
    return LabelSchema.from_toml(spec)


# ---------------------------------------------------------------- helpers
def _split_cell(row: str | Sequence[str] | None, sep: str) -> list[str]:
    if row is None or (isinstance(row, float) and row != row):  # None or NaN from pandas
        return []
    if isinstance(row, str):
        return [part.strip() for part in row.split(sep) if part.strip()]
    return [str(part).strip() for part in row if str(part).strip()]


def _unknown_label_message(label: str, known: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(label, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown label {label!r}{hint} (the schema's labels are {list(known)})"


