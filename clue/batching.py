"""Padding, truncation and batches of variable-length examples.

``sequence_padding`` pads to the longest in the batch (or a given length); ``truncate_sequences`` shortens a
group of sequences the way bert4keras does (always from the longest one, the first on ties);
``Batches`` is a ``keras.utils.PyDataset`` over encoded examples with optional length bucketing and seeded
shuffling.
"""

import math

import keras
import numpy as np

from clue.tokenizer import truncate_lengths


def sequence_padding(inputs, length=None, value=0, seq_dims=1, mode="post", dtype=None):
    """Stack ``inputs`` (lists or arrays) into one array, padded with ``value`` to ``length``.

    ``length`` defaults to the longest in each of the first ``seq_dims`` dimensions; longer inputs are cut
    to their first ``length`` items. ``mode`` "post" pads at the end, "pre" at the start (as bert4keras).
    """
    if mode not in ("post", "pre"):
        raise ValueError(f'mode must be "post" or "pre", got {mode!r}')
    if len(inputs) == 0:
        raise ValueError("sequence_padding needs at least one sequence")
    arrays = [np.asarray(x) for x in inputs]
    if length is None:
        length = np.max([a.shape[:seq_dims] for a in arrays], axis=0)
    elif not hasattr(length, "__getitem__"):
        length = [length] * seq_dims
    length = [int(n) for n in length]
    if dtype is None:  # empty lists come out as float64: let the others decide
        filled = [a for a in arrays if a.size] or arrays
        dtype = np.result_type(*filled)
    out = np.full([len(arrays), *length, *arrays[0].shape[seq_dims:]], value, dtype=dtype)
    for i, a in enumerate(arrays):
        a = a[tuple(slice(0, n) for n in length)]
        if mode == "post":
            where = tuple(slice(0, s) for s in a.shape[:seq_dims])
        else:
            where = tuple(slice(n - s, n) for s, n in zip(a.shape[:seq_dims], length))
        out[(i, *where)] = a
    return out


def truncate_sequences(maxlen, indices, *sequences):
    """Shorten ``sequences`` (lists, in place) until their total length is at most ``maxlen``.

    Each step removes one item from the currently longest sequence (the first on ties), at position
    ``indices`` (one int for all, or one per sequence): -2 keeps a final [SEP], 1 keeps a leading [CLS].
    Empty or None sequences are skipped. Returns the non-empty sequences.
    """
    sequences = [s for s in sequences if s]
    if not isinstance(indices, (list, tuple)):
        indices = [indices] * len(sequences)
    targets = truncate_lengths(maxlen, [len(s) for s in sequences])
    for seq, index, target in zip(sequences, indices, targets):
        while len(seq) > target:
            seq.pop(index)
    return sequences


class Batches(keras.utils.PyDataset):
    """Batches of variable-length examples for ``model.fit`` / ``predict``, padded to the longest in each batch.

    ``features``: one tuple per example of sequences (e.g. (token_ids, segment_ids)) or scalars, each
    position becoming one padded array; or one sequence (a list or array) per example for a single input.
    ``labels`` (optional): one label (scalar or sequence) per example.
    ``shuffle`` reorders examples every epoch from ``seed`` (the same seed gives the same order).
    ``bucket``: sort examples by length inside windows of ``bucket`` batches so that each batch holds
    similar lengths (less padding); batch order is shuffled too when ``shuffle``.
    ``multiple``: pad feature sequences to a multiple of it, so few distinct shapes reach a compiled
    (XLA/JAX) step. ``order`` lists the example indices in the order the batches yield them; ``restore``
    puts predictions back in example order.
    """

    def __init__(self, features, labels=None, batch_size=32, shuffle=False, seed=0, bucket=None,
                 pad_value=0, length_of=None, multiple=1, **kwargs):
        super().__init__(**kwargs)
        if labels is not None and len(labels) != len(features):
            raise ValueError(f"{len(features)} examples but {len(labels)} labels")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.features = [f if isinstance(f, tuple) else (f,) for f in features]  # a list is one sequence
        self.labels, self.batch_size, self.shuffle = labels, batch_size, shuffle
        self.seed, self.bucket, self.pad_value, self.multiple = seed, bucket, pad_value, multiple
        self.length_of = length_of or (lambda example: len(example[0]))
        self.epoch = 0
        self._plan()

    def _plan(self):
        """Fix this epoch's batches (lists of example indices)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.features)) if self.shuffle else np.arange(len(self.features))
        if self.bucket:
            window = self.batch_size * self.bucket
            lengths = np.array([self.length_of(f) for f in self.features])
            order = np.concatenate([
                chunk[np.argsort(lengths[chunk], kind="stable")]
                for chunk in np.array_split(order, max(1, math.ceil(len(order) / window)))
            ]) if len(order) else order
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.bucket and self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        self.batches = batches
        self.order = np.concatenate(batches) if batches else np.zeros(0, int)

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        chosen = self.batches[index]
        columns = zip(*(self.features[i] for i in chosen))
        x = tuple(self._stack(column, self.multiple) for column in columns)
        x = x[0] if len(x) == 1 else x
        if self.labels is None:
            return (x,)
        return x, self._stack([self.labels[i] for i in chosen])

    def _stack(self, column, multiple=1):
        if np.ndim(column[0]) == 0:
            return np.asarray(column)
        length = None
        if multiple > 1:
            length = -(-max(len(c) for c in column) // multiple) * multiple
        return sequence_padding(column, length=length, value=self.pad_value)

    def set_epoch(self, epoch):
        """Plan the batches of ``epoch`` (the order depends on (seed, epoch) only: resumed runs match)."""
        if self.shuffle and epoch != self.epoch:
            self.epoch = epoch
            self._plan()

    def on_epoch_end(self):
        if self.shuffle:
            self.epoch += 1
            self._plan()

    def restore(self, outputs):
        """Rows of ``outputs`` (in batch order, e.g. from ``model.predict(self)``) back in example order."""
        outputs = np.asarray(outputs)
        if len(outputs) != len(self.order):
            raise ValueError(f"{len(outputs)} outputs for {len(self.order)} examples")
        restored = np.empty_like(outputs)
        restored[self.order] = outputs
        return restored
