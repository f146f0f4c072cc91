"""The label schema: which labels are independent, which are mutually exclusive, and
which one is the implied "none" label.

A schema is declared once and every later part obeys it: the model head (a sigmoid per
independent label, a softmax per exclusive group), the loss, the decisions and the report.

Column layout
-------------
``schema.labels`` is the order of the columns of every target or score matrix::

    independent labels ... | group 1 members ... | group 2 members ... | none label

The first ``schema.n_outputs`` columns are what a model head outputs
(``schema.output_labels``); the ``none`` column, when declared, is derived: it is 1
exactly when no independent label is 1, and a model never predicts it freely.

The TOML form::

    [labels]
    independent = ["Atelectasis", "Effusion", ...]
    none = "No Finding"

    [labels.exclusive]
    view = ["PA", "AP"]

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

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["LabelSchema", "HeadBlock", "load_schema"]

DEFAULT_SEPARATOR = "|"


@dataclass(frozen=True)
class HeadBlock:
    """A contiguous block of model-output columns with one activation.

    ``kind`` is ``"sigmoid"`` (independent labels) or ``"softmax"`` (one exclusive group);
    columns ``start:stop`` of the head output belong to it.
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
    """

    independent: tuple[str, ...] = ()
    exclusive: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    none: str | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)

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
            + ([(none, "none")] if none else [])
        ):
            if label in seen:
                raise SchemaError(f"label {label!r} is declared twice ({seen[label]} and {role}); each label has one role")
            seen[label] = role
        if not seen:
            raise SchemaError("the schema declares no labels; give at least one independent label or exclusive group")
        object.__setattr__(self, "independent", independent)
        object.__setattr__(self, "exclusive", groups)
        object.__setattr__(self, "none", none)
        object.__setattr__(self, "notes", tuple(self.notes))

    # ------------------------------------------------------------------ layout
    @property
    def output_labels(self) -> tuple[str, ...]:
        """Labels a model head outputs, in column order (everything but ``none``)."""
        return self.independent + tuple(m for ms in self.exclusive.values() for m in ms)

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
        return tuple(blocks)

    @property
    def is_plain_multilabel(self) -> bool:
        """True when every label is independent (no groups, no none label)."""
        return not self.exclusive and self.none is None

    def index(self, label: str) -> int:
        """Column of ``label`` in ``labels``; a clear error names the known labels otherwise."""
        try:
            return self.labels.index(label)
        except ValueError:
            raise SchemaViolation(_unknown_label_message(label, self.labels)) from None

    def group_of(self, label: str) -> str | None:
        """Name of the exclusive group ``label`` belongs to, or None."""
        for name, members in self.exclusive.items():
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
        """Append the derived ``none`` column to a binary (n, n_outputs) matrix.

        ``none = 1 - max(independent columns)``; with no ``none`` label the input is returned as is.
        """
        out = np.asarray(outputs)
        if self.none is None:
            return out
        any_ind = (out[:, : len(self.independent)] != 0).any(axis=1)
        return np.concatenate([out, (~any_ind).astype(out.dtype)[:, None]], axis=1)

    def complete_scores(self, scores: np.ndarray) -> np.ndarray:
        """Append a ``none`` score to (n, n_outputs) probabilities: ``prod_i (1 - p_i)``.

        That is the probability that no independent label is true when the head's sigmoids are
        read as independent events; it ranks images for the none label's AUC.
        """
        s = np.asarray(scores, dtype=np.float64)
        if self.none is None:
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
    ) -> None:
        """Check that every row of a full (n, n_labels) 0/1 matrix obeys the schema.

        Raises :class:`SchemaViolation` naming the first bad row (and how many more there are):
        values other than 0/1, the ``none`` label beside an independent label (or missing when no
        independent label is true), zero or several members of one exclusive group.
        """
        m = np.asarray(matrix)
        if m.ndim != 2 or m.shape[1] != self.n_labels:
            raise SchemaViolation(
                f"{where(source)}expected a matrix with {self.n_labels} columns {list(self.labels)}, got shape {m.shape}"
            )

        def name(r: int) -> object:
            return row_names[r] if row_names is not None else r

        bad = np.flatnonzero(~np.isin(m, (0, 1)).all(axis=1))
        if bad.size:
            r = int(bad[0])
            cols = [self.labels[c] for c in np.flatnonzero(~np.isin(m[r], (0, 1)))]
            raise SchemaViolation(
                f"{where(source, name(r))}labels must be 0 or 1; got {m[r][~np.isin(m[r], (0, 1))].tolist()} "
                f"for {cols}" + _more(bad.size)
            )
        n_ind = len(self.independent)
        if self.none:
            any_ind = m[:, :n_ind].any(axis=1)
            none_col = m[:, self.none_index].astype(bool)
            clash = np.flatnonzero(none_col & any_ind)
            missing = np.flatnonzero(~none_col & ~any_ind)
            if clash.size or missing.size:
                # Name the first bad row; count only rows with the same fault as "like this".
                if clash.size and (not missing.size or clash[0] < missing[0]):
                    r, same, other = int(clash[0]), clash.size, missing.size
                    found = [self.labels[c] for c in np.flatnonzero(m[r, :n_ind])]
                    msg = (f"{self.none!r} is true together with {', '.join(map(repr, found))}; "
                           f"{self.none!r} means no independent label is true")
                    other_msg = f"{other} row(s) with no label true and {self.none!r} = 0"
                else:
                    r, same, other = int(missing[0]), missing.size, clash.size
                    msg = (f"no independent label is true but {self.none!r} is 0; "
                           f"a row with no finding must have {self.none!r} = 1")
                    other_msg = f"{other} row(s) with {self.none!r} true beside another label"
                raise SchemaViolation(f"{where(source, name(r))}{msg}" + _more(same)
                                      + (f"; also {other_msg}" if other else ""))
        start = n_ind
        for group, members in self.exclusive.items():
            counts = m[:, start : start + len(members)].sum(axis=1)
            several, none_on = np.flatnonzero(counts > 1), np.flatnonzero(counts == 0)
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

    # ----------------------------------------------------------- construction
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> "LabelSchema":
        """Build from ``{"independent": [...], "exclusive": {...}, "none": ...}``.

        A top-level ``{"labels": {...}}`` wrapper (the TOML layout) is accepted too.
        """
        if not isinstance(data, Mapping):
            raise SchemaError(f"{where(source)}a schema must be a mapping, got {type(data).__name__}")
        if "labels" in data and isinstance(data["labels"], Mapping):
            data = data["labels"]
        unknown = set(data) - {"independent", "exclusive", "none"}
        if unknown:
            raise SchemaError(
                f"{where(source)}unknown schema key(s) {sorted(unknown)}; the keys are "
                "'independent', 'exclusive' and 'none'"
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
        try:
            return cls(tuple(independent), dict(exclusive), data.get("none"))
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
        if self.exclusive:
            lines += ["", "[labels.exclusive]"]
            lines += [f"{_toml_str(k)} = {_toml_list(v)}" for k, v in self.exclusive.items()]
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

    def __repr__(self) -> str:
        parts = [f"independent={list(self.independent)}"]
        if self.exclusive:
            parts.append(f"exclusive={ {k: list(v) for k, v in self.exclusive.items()} }")
        if self.none:
            parts.append(f"none={self.none!r}")
        return f"LabelSchema({', '.join(parts)})"

    def __hash__(self) -> int:
        return hash((self.independent, tuple(self.exclusive.items()), self.none))


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
def _label_name(x: object, role: str) -> str:
    if not isinstance(x, str):
        raise SchemaError(f"labels must be strings; got {x!r} ({type(x).__name__}) in {role}")
    s = x.strip()
    if not s:
        raise SchemaError(f"empty label name in {role}")
    if s != x:
        raise SchemaError(f"label {x!r} in {role} has leading or trailing spaces; write {s!r}")
    return s


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


def _more(n: int) -> str:
    return f" ({n - 1} more row(s) like this)" if n > 1 else ""


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_list(items: Iterable[str]) -> str:
    return "[" + ", ".join(_toml_str(i) for i in items) + "]"
