"""clue.batching: padding, bert4keras's truncation rule, and Batches (bucketing, seeded shuffling)."""

import random

import numpy as np
import pytest

from clue.batching import Batches, sequence_padding, truncate_sequences


def test_sequence_padding_to_longest_or_given_length():
    out = sequence_padding([[1, 2, 3], [4], []])
    assert out.tolist() == [[1, 2, 3], [4, 0, 0], [0, 0, 0]] and out.dtype.kind == "i"
    assert sequence_padding([[1, 2, 3], [4]], length=2).tolist() == [[1, 2], [4, 0]]
    assert sequence_padding([[1, 2, 3], [4]], length=4, value=-1, mode="pre").tolist() == [[-1, 1, 2, 3],
                                                                                             [-1, -1, -1, 4]]
    assert sequence_padding([[1, 2, 3], [4]], length=2, mode="pre").tolist() == [[1, 2], [0, 4]]  # as bert4keras
    pairs = sequence_padding([[[1, 2], [3, 4]], [[5, 6]]])  # 2-d items: padded along the first axis
    assert pairs.shape == (2, 2, 2) and pairs[1].tolist() == [[5, 6], [0, 0]]
    grid = sequence_padding([np.ones((2, 3)), np.ones((3, 1))], seq_dims=2)
    assert grid.shape == (2, 3, 3) and grid.sum() == 6 + 3
    with pytest.raises(ValueError, match="mode"):
        sequence_padding([[1]], mode="middle")


def _truncate_reference(maxlen, index, *sequences):
    """bert4keras's loop, step by step: pop from the longest (first on ties) until the total fits."""
    sequences = [s for s in sequences if s]
    while sum(map(len, sequences)) > maxlen:
        lengths = [len(s) for s in sequences]
        sequences[lengths.index(max(lengths))].pop(index)
    return sequences


def test_truncate_sequences_matches_the_step_by_step_rule():
    rng = random.Random(0)
    for _ in range(500):
        parts = [list(range(rng.randint(2, 12))) for _ in range(rng.randint(1, 3))]
        maxlen, index = rng.randint(len(parts) * 2, 30), rng.choice([-2, 1])
        expected = _truncate_reference(maxlen, index, *[list(p) for p in parts])
        assert truncate_sequences(maxlen, index, *parts) == expected
        assert parts == expected  # in place, like bert4keras
    first, second = [0, 1, 2, 3, 4, 5], [9, 8, 7]
    truncate_sequences(6, -2, first, second, None)
    assert first == [0, 1, 5] and second == [9, 8, 7]  # only the longer part, keeping its last item
    first, second = [0, 1, 2, 3], [9, 8, 7, 6]
    truncate_sequences(5, 1, first, second)
    assert first == [0, 3] and second == [9, 7, 6]  # a tie costs the first part first


def _examples(n, seed=0):
    rng = np.random.default_rng(seed)
    return [(list(range(1, m + 1)), [0] * m) for m in rng.integers(1, 40, n)], list(range(n))


def test_batches_pad_to_the_longest_in_each_batch():
    features, labels = _examples(10)
    batches = Batches(features, labels, batch_size=4)
    assert len(batches) == 3
    (ids, segs), y = batches[0]
    assert ids.shape == segs.shape == (4, max(len(f[0]) for f in features[:4]))
    assert y.tolist() == [0, 1, 2, 3] and ids[0, :len(features[0][0])].tolist() == features[0][0]
    assert (ids[0, len(features[0][0]):] == 0).all()
    (x,) = Batches([f[0] for f in features], batch_size=4)[2]  # one input, no labels
    assert x.shape[0] == 2
    seq_labels = Batches(features, [f[0] for f in features], batch_size=5)[1][1]  # padded label sequences
    assert seq_labels.shape == (5, max(len(f[0]) for f in features[5:]))
    with pytest.raises(ValueError, match="10 examples but 9 labels"):
        Batches(features, labels[:9])


def test_padding_to_a_multiple():
    features, labels = _examples(20)
    batches = Batches(features, labels, batch_size=6, multiple=8)
    for i in range(len(batches)):
        (ids, segs), y = batches[i]
        longest = max(len(features[j][0]) for j in batches.batches[i])
        assert ids.shape[1] % 8 == 0 and longest <= ids.shape[1] < longest + 8 and y.ndim == 1


def _seen(batches):
    return [int(i) for b in range(len(batches)) for i in batches[b][1]]


def test_bucketing_keeps_every_example_once_and_reduces_padding():
    features, labels = _examples(203)
    plain = Batches(features, labels, batch_size=8, shuffle=True, seed=3)
    bucketed = Batches(features, labels, batch_size=8, shuffle=True, seed=3, bucket=10)
    for batches in (plain, bucketed):
        assert sorted(_seen(batches)) == labels and len(batches) == 26
        assert sorted(batches.order.tolist()) == labels
    padding = [sum(b[0][0].size for b in (batches[i] for i in range(len(batches))))
               for batches in (plain, bucketed)]
    assert padding[1] < 0.8 * padding[0]


def test_seeded_shuffle_is_reproducible_and_changes_each_epoch():
    features, labels = _examples(50)
    a = Batches(features, labels, batch_size=8, shuffle=True, seed=7, bucket=3)
    b = Batches(features, labels, batch_size=8, shuffle=True, seed=7, bucket=3)
    first = _seen(a)
    assert first == _seen(b) and first != labels
    a.on_epoch_end()
    second = _seen(a)
    assert second != first and sorted(second) == labels
    b.on_epoch_end()
    assert _seen(b) == second
    assert _seen(Batches(features, labels, batch_size=8, shuffle=True, seed=8, bucket=3)) != first
    assert _seen(Batches(features, labels, batch_size=8)) == labels  # no shuffle: file order


def test_restore_undoes_the_batch_order():
    features, labels = _examples(30)
    batches = Batches(features, batch_size=4, shuffle=True, seed=1, bucket=2)
    outputs = np.concatenate([batches[i][0][0][:, :1] for i in range(len(batches))])  # first token = 1
    lengths = np.concatenate([(batches[i][0][0] > 0).sum(1) for i in range(len(batches))])
    restored = batches.restore(lengths)
    assert restored.tolist() == [len(f[0]) for f in features] and outputs.shape == (30, 1)
    with pytest.raises(ValueError, match="29 outputs for 30 examples"):
        batches.restore(lengths[:29])
