"""Errors a user sees.

Every error labelwise raises on bad input is a :class:`LabelwiseError`: its message
names the file, the row or the label at fault and says what to do. The CLI prints the
message alone (no traceback) and exits with status 2.
"""

from __future__ import annotations


class LabelwiseError(ValueError):
    """Base class: a problem with the user's input or settings, explained in the message."""


class SchemaError(LabelwiseError):
    """The label schema itself is invalid (duplicate label, empty group, bad file)."""


class SchemaViolation(LabelwiseError):
    """A row of labels breaks the schema (e.g. "No Finding|Effusion", two members of one group)."""


class TableError(LabelwiseError):
    """A label table cannot be read: missing column, empty cell, duplicate id, empty table."""


class InputError(LabelwiseError):
    """Arrays passed to a metric, loss or decision have the wrong shape, type or values."""


def where(source: str | None = None, row: object | None = None) -> str:
    """Format a location prefix such as ``"labels.csv, row 12: "`` (parts left out when None)."""
    parts = []
    if source is not None:
        parts.append(str(source))
    if row is not None:
        parts.append(f"row {row}")
    return (", ".join(parts) + ": ") if parts else ""


class Note(UserWarning):
    """Not a problem: what labelwise read or chose where the input allowed several readings (the
    format, the id column, a predict file's columns), said once. The CLI prints it as ``note:``."""
