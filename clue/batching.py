"""Padding, truncation and batches of variable-length examples.

``sequence_padding`` pads to the longest in the batch (or a given length); ``truncate_sequences`` shortens a
group of sequences the way bert4keras does (always from the longest one, the first on ties);
``Batches`` is a ``keras.utils.PyDataset`` over encoded examples with optional length bucketing and seeded
shuffling.
"""

import math

import numpy as np


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


def truncate_lengths(maxlen, lengths):
    """The lengths ``truncate_sequences`` leaves: one at a time off the longest (the first on ties)."""
    lengths = list(lengths)
    excess = sum(lengths) - maxlen
    if excess <= 0:
        return lengths
    if len(lengths) == 2:  # the common pair case in closed form
        a, b = lengths
        big, small = (a, b) if a >= b else (b, a)
        cut = min(excess, big - small)
        big -= cut
        excess -= cut
        # equal now: alternate, the first sequence first
        first_cut, second_cut = (excess + 1) // 2, excess // 2
        if a >= b:
            return [big - first_cut, small - second_cut]
        # b was longer: after cutting to equality, the first sequence is cut first on ties
        return [small - first_cut, big - second_cut]
    for _ in range(excess):
        lengths[int(np.argmax(lengths))] -= 1
    return lengths


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
