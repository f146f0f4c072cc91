"""TensorBoard event files for ``labelwise train --tensorboard DIR`` (config key ``tensorboard``).

Per epoch: ``loss``, ``val_loss``, ``learning_rate``, ``val_macro_auc`` and ``val_auc/<label>``
for every label (the exact AUCs of the run's log), step = epoch number (1-based, as in
``log.csv``). Open with ``tensorboard --logdir DIR``.

Written with TensorFlow's core ``tf.summary.write`` and the scalar plugin's metadata, which is
what ``tf.summary.scalar`` writes; ``tf.summary.scalar`` itself needs the ``tensorboard`` package,
and training must not need it. Each epoch is flushed, so the board follows a running job.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping

from ..errors import InputError

__all__ = ["EventLog", "SCALARS"]

SCALARS = ("loss", "val_loss", "learning_rate", "val_macro_auc")


class EventLog:
    """Writes rows of the training log (dicts as in ``log.csv``, with ``val_auc`` per label) as
    TensorBoard scalars under ``logdir``."""

    def __init__(self, logdir: str | os.PathLike):
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        self.logdir = Path(logdir)
        if self.logdir.exists() and not self.logdir.is_dir():
            raise InputError(f"tensorboard = {logdir}: this is a file; give a folder for the event files")
        try:
            self.logdir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"tensorboard = {logdir}: cannot create the folder ({e.strerror or e})") from None
        self._tf = tf
        self._writer = tf.summary.create_file_writer(str(self.logdir))
        self._metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))

    def write(self, row: Mapping[str, Any]) -> None:
        """One epoch: the :data:`SCALARS` present in ``row`` and ``val_auc/<label>``; NaN is skipped."""
        tf, step = self._tf, int(row["epoch"])
        values = {k: row[k] for k in SCALARS if row.get(k) is not None}
        values.update({f"val_auc/{label}": v for label, v in (row.get("val_auc") or {}).items()})
        with self._writer.as_default():
            for tag, value in values.items():
                if value is None or not math.isfinite(float(value)):
                    continue
                tf.summary.write(tag, tf.constant(float(value), tf.float32), step=step, metadata=self._metadata)
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self._writer.close()
