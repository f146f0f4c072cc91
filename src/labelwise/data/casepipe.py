"""The input pipeline of case models: batches of cases, each padded to its longest case, with
the 0/1 mask :class:`labelwise.blocks.layers.MultiImagePooling` takes.

:class:`CaseDataset` is a ``keras.utils.PyDataset``: it reads the cases of one batch when the
batch is asked for (never all cases in memory), so it runs on any Keras backend. A batch is
``({"images": (b, n, h, w, c) float32, "mask": (b, n) float32}, y)`` (no ``y`` for prediction),
``n`` the longest case of the batch after :func:`labelwise.data.cases.select_slices`.

Padding slots repeat the case's own slices (mask 0): the pooling ignores them, and
BatchNormalization's training-mode batch statistics then see real slices, not blank images
that exist only because another case of the batch is longer.

Determinism: epoch ``e``'s order is ``numpy.random.default_rng([seed, e]).permutation`` and its
slice draws come from ``(seed, e, case index)``; :meth:`CaseDataset.batch` depends on nothing
else, so a resumed run reads exactly the batches the uninterrupted one read.
On TensorFlow, Keras would fix the slice-count dimension to the first two batches' shapes when it
converts a ``PyDataset``; :meth:`CaseDataset.for_fit` / :meth:`for_predict` therefore hand Keras a
``tf.data`` stream with that dimension left open (other backends get Python iterables).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator, Sequence

import keras
import numpy as np

from ..errors import InputError
from .cases import CaseSet, load_case, select_slices

__all__ = ["CaseDataset", "pad_cases"]


def pad_cases(stacks: Sequence[np.ndarray], *, multiple: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Stacks ``(s_i, h, w, c)`` -> ``(images (b, n, h, w, c), mask (b, n))`` with ``n`` the
    longest ``s_i`` rounded up to a ``multiple``; padding slot ``j >= s_i`` holds slice
    ``j mod s_i`` of its own case, with mask 0."""
    n = max(len(s) for s in stacks)
    n = -(-n // int(multiple)) * int(multiple)
    images = np.empty((len(stacks), n, *stacks[0].shape[1:]), dtype=np.float32)
    mask = np.zeros((len(stacks), n), dtype=np.float32)
    for i, s in enumerate(stacks):
        images[i] = s[np.arange(n) % len(s)]
        mask[i, : len(s)] = 1.0
    return images, mask


def _as_model_input(stack: np.ndarray, image_size: Sequence[int], channels: int) -> np.ndarray:
    """Add the channel axis; slices must already be ``image_size`` with ``channels``."""
    x = np.asarray(stack, dtype=np.float32)
    x = x[..., None] if x.ndim == 3 else x
    if x.shape[1:] != (*image_size, channels):
        raise InputError(f"slices of shape {x.shape[1:]} need resizing to {(*image_size, channels)}; "
                         "pass prepare= (labelwise.training.predict.prepare_stack)")
    return x


class CaseDataset(keras.utils.PyDataset):
    """Batches of ``batch_size`` cases of ``cases`` (a :class:`CaseSet` with ``lengths``).

    ``train``: shuffled per epoch and random slice subsets (see the module docstring); else
    table order and evenly spaced slices. ``prepare(stack, image_size=, channels=)`` turns a
    case's chosen slices into float32 ``(s, h, w, channels)`` model input (for training this
    is :func:`labelwise.training.predict.prepare_stack`, the very function ``predict`` uses).
    ``y_columns``: how many target columns to yield (None: no targets).
    """

    def __init__(self, cases: CaseSet, *, batch_size: int, image_size: Sequence[int], channels: int,
                 max_slices: int | None = None, prepare: Callable[..., np.ndarray] | None = None,
                 train: bool = False, seed: int = 0, y_columns: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if cases.lengths is None:
            raise InputError("CaseDataset needs the case lengths: run labelwise.data.cases.check_cases first")
        if int(batch_size) < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        if max_slices is not None and int(max_slices) < 1:
            raise InputError(f"max_slices must be at least 1 (or none to keep every slice), got {max_slices}")
        if y_columns is not None and cases.y is None:
            raise InputError("targets asked for, but the cases have no labels")
        self.cases = cases
        self.batch_size = int(batch_size)
        self.image_size = tuple(int(v) for v in image_size)
        self.channels = int(channels)
        self.max_slices = None if max_slices is None else int(max_slices)
        self.prepare = prepare
        self.train = bool(train)
        self.seed = int(seed)
        self.y_columns = y_columns
        self.epoch = 0

    def __len__(self) -> int:
        return math.ceil(len(self.cases) / self.batch_size)

    @property
    def num_batches(self) -> int:
        return len(self)

    def slices_per_case(self) -> np.ndarray:
        """How many slices each case contributes to a batch (``min(length, max_slices)``)."""
        lengths = np.asarray(self.cases.lengths)
        return lengths if self.max_slices is None else np.minimum(lengths, self.max_slices)

    def order(self, epoch: int) -> np.ndarray:
        """Case indices in the order epoch ``epoch`` reads them."""
        n = len(self.cases)
        return np.random.default_rng([self.seed, int(epoch)]).permutation(n) if self.train else np.arange(n)

    def batch(self, epoch: int, i: int):
        """Batch ``i`` of epoch ``epoch``: ``(x, y)``, or ``x`` alone without targets."""
        if not 0 <= i < len(self):
            raise IndexError(i)
        idx = self.order(epoch)[i * self.batch_size: (i + 1) * self.batch_size]
        stacks = []
        for k in idx:
            pick = select_slices(int(self.cases.lengths[k]), self.max_slices, train=self.train, seed=self.seed,
                                 epoch=epoch, index=int(k))
            raw = load_case(self.cases.paths[k], self.cases.ids[k], indices=pick)
            if self.prepare is not None:
                stacks.append(np.asarray(self.prepare(raw, image_size=self.image_size, channels=self.channels),
                                         dtype=np.float32))
            else:
                stacks.append(_as_model_input(raw, self.image_size, self.channels))
        # JAX/PyTorch compile one program per batch shape: slice counts rounded up to a multiple of
        # 8 bound the programs to max_slices / 8; tf.data leaves the dimension open (one program)
        images, mask = pad_cases(stacks, multiple=1 if keras.backend.backend() == "tensorflow" else 8)
        x = {"images": images, "mask": mask}
        if self.y_columns is None:
            return x
        return x, np.asarray(self.cases.y)[idx, : self.y_columns].astype(np.float32)

    def __getitem__(self, i: int):
        return self.batch(self.epoch, i)

    def on_epoch_end(self) -> None:
        self.epoch += 1

    def epochs(self, start: int, stop: int) -> Iterator[Any]:
        """Every batch of epochs ``start .. stop - 1`` in turn (one stream for ``fit`` with
        ``steps_per_epoch = len(self)``: the epoch number comes from the stream, not from callbacks)."""
        for e in range(int(start), int(stop)):
            for i in range(len(self)):
                yield self.batch(e, i)

    def _signature(self):
        import tensorflow as tf

        x = {"images": tf.TensorSpec((None, None, *self.image_size, self.channels), tf.float32),
             "mask": tf.TensorSpec((None, None), tf.float32)}
        if self.y_columns is None:
            return x
        return x, tf.TensorSpec((None, self.y_columns), tf.float32)

    def for_fit(self, start: int, stop: int):
        """What ``model.fit(..., steps_per_epoch=len(self))`` takes for epochs ``start .. stop - 1``."""
        if keras.backend.backend() != "tensorflow":
            return self.epochs(start, stop)
        import tensorflow as tf

        ds = tf.data.Dataset.from_generator(lambda: self.epochs(start, stop), output_signature=self._signature())
        # a known length: Keras otherwise warns "ran out of data" at the end of the stream
        ds = ds.apply(tf.data.experimental.assert_cardinality(len(self) * (int(stop) - int(start))))
        return ds.prefetch(2)  # the next batches are read while the model runs on this one

    def for_predict(self):
        """What ``model.predict`` takes: every case once, in table order (``train`` must be False)."""
        if self.train:
            raise InputError("for_predict needs a dataset built with train=False")
        if keras.backend.backend() != "tensorflow":
            return self
        import tensorflow as tf

        ds = tf.data.Dataset.from_generator(lambda: (self.batch(0, i) for i in range(len(self))),
                                            output_signature=self._signature())
        return ds.apply(tf.data.experimental.assert_cardinality(len(self))).prefetch(2)
