"""clue.batching: padding, bert4keras's truncation rule, Batches (collate, bucketing, seeded shuffling,
the padding policy) and prediction in example order."""

import random

import numpy as np
import pytest

from clue.batching import Batches, pad_inputs, predict, sequence_padding, truncate_sequences


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
    """Classification examples (token_ids, segment_ids, label): example i has label i."""
    rng = np.random.default_rng(seed)
    return [(list(range(1, m + 1)), [0] * m, i) for i, m in enumerate(rng.integers(1, 40, n))]


def _batches(examples, batch_size, **options):
    return Batches(examples, pad_inputs, batch_size, **options)


def test_batches_pad_to_the_longest_in_each_batch():
    examples = _examples(10)
    batches = _batches(examples, 4)
    assert len(batches) == 3
    (ids, segs), y = batches[0]
    assert ids.shape == segs.shape == (4, max(len(e[0]) for e in examples[:4]))
    assert y.tolist() == [0, 1, 2, 3] and ids[0, :len(examples[0][0])].tolist() == examples[0][0]
    assert (ids[0, len(examples[0][0]):] == 0).all()
    assert batches[2][0][0].shape[0] == 2
    with pytest.raises(ValueError, match="batch_size must be positive"):
        _batches(examples, 0)


def test_padding_to_a_multiple():
    examples = _examples(20)
    batches = _batches(examples, 6, multiple=8)
    for i in range(len(batches)):
        (ids, segs), y = batches[i]
        longest = max(len(examples[j][0]) for j in batches.batches[i])
        assert ids.shape[1] % 8 == 0 and longest <= ids.shape[1] < longest + 8 and y.ndim == 1


def test_the_backend_decides_the_default_multiple():
    import keras

    assert _batches(_examples(3), 2).multiple == {"jax": 8}.get(keras.backend.backend(), 1)


def test_a_task_collate_gets_the_padded_length():
    # span and choice examples have their own collate and length: the same plan and padding apply to them
    examples = [[[1] * n, [2] * n] for n in (3, 9, 17)]          # e.g. two choices per question
    seen = []
    batches = Batches(examples, lambda chosen, length: seen.append((len(chosen), length)) or (None, None),
                      batch_size=2, length_of=lambda e: max(map(len, e)), multiple=8)
    batches[0], batches[1]
    assert seen == [(2, 16), (1, 24)]


def _seen(batches):
    return [int(i) for b in range(len(batches)) for i in batches[b][1]]


def test_bucketing_keeps_every_example_once_and_reduces_padding():
    examples = _examples(203)
    labels = list(range(203))
    plain = _batches(examples, 8, shuffle=True, seed=3)
    bucketed = _batches(examples, 8, shuffle=True, seed=3, bucket=10)
    for batches in (plain, bucketed):
        assert sorted(_seen(batches)) == labels and len(batches) == 26
        assert sorted(batches.order.tolist()) == labels
    padding = [sum(b[0][0].size for b in (batches[i] for i in range(len(batches))))
               for batches in (plain, bucketed)]
    assert padding[1] < 0.8 * padding[0]


def test_seeded_shuffle_is_reproducible_and_changes_each_epoch():
    examples = _examples(50)
    labels = list(range(50))
    a = _batches(examples, 8, shuffle=True, seed=7, bucket=3)
    b = _batches(examples, 8, shuffle=True, seed=7, bucket=3)
    first = _seen(a)
    assert first == _seen(b) and first != labels
    a.on_epoch_end()
    second = _seen(a)
    assert second != first and sorted(second) == labels
    b.set_epoch(1)
    assert _seen(b) == second
    assert _seen(_batches(examples, 8, shuffle=True, seed=8, bucket=3)) != first
    assert _seen(_batches(examples, 8)) == labels  # no shuffle: file order


def _first_token_model():
    """A model whose output is the first token id (and a per-token variant)."""
    import keras

    from clue.heads import Pooling

    token_ids = keras.Input((None,), dtype="int32")
    segment_ids = keras.Input((None,), dtype="int32")
    hidden = keras.layers.Embedding(50, 1, embeddings_initializer=keras.initializers.Constant(
        np.arange(50, dtype="float32")[:, None]))(token_ids)
    return (keras.Model([token_ids, segment_ids], Pooling("cls")(hidden, token_ids)),
            keras.Model([token_ids, segment_ids], hidden))


def test_predict_returns_example_order():
    lengths = [5, 1, 9, 3, 7, 2, 8]
    examples = [([i + 1] * n, [0] * n, 0) for i, n in enumerate(lengths)]
    pooled, per_token = _first_token_model()
    batches = _batches(examples, 2, bucket=4)
    assert list(batches.order) != list(range(len(lengths)))   # bucketing did reorder
    assert predict(pooled, batches)[:, 0].tolist() == [float(i + 1) for i in range(len(lengths))]
    # per-token outputs (batch, length, 1): one array per example, padded to its batch
    rows = predict(per_token, batches)
    assert [row[0, 0] for row in rows] == [float(i + 1) for i in range(len(lengths))]
    assert all(len(row) >= n for row, n in zip(rows, lengths))
    # reduced as each batch comes, in example order too
    assert predict(per_token, batches, reduce=lambda row: int((row > 0).sum())) == lengths
    assert predict(pooled, _batches([], 2)).shape == (0,)


def test_dev_outputs_recorded_in_training_are_given_back_only_for_the_same_weights_and_inputs(monkeypatch):
    """The best epoch's dev pass is not run again for the dev file (batching.Remembered): a repeat of a
    recorded call returns its outputs without the model; other weights, inputs or an unrecorded call run it."""
    from clue import batching

    monkeypatch.setattr(batching, "REMEMBERED", batching.Remembered())
    calls = []
    real = batching.run_model
    monkeypatch.setattr(batching, "run_model", lambda *a: calls.append(1) or real(*a))
    pooled, per_token = _first_token_model()
    examples = [([i + 1] * n, [0] * n, 0) for i, n in enumerate([5, 1, 9, 3])]
    first = predict(pooled, _batches(examples, 2))
    assert predict(pooled, _batches(examples, 2)).tolist() == first.tolist() and len(calls) == 2  # not recording
    with batching.REMEMBERED.recording():
        recorded = predict(pooled, _batches(examples, 2))
        spans = predict(per_token, _batches(examples, 2), reduce=_tokens_of)
        captured = 3
        predict(per_token, _batches(examples, 2), reduce=lambda row: int((row > captured).sum()))   # a closure
    assert len(calls) == 5
    again = predict(pooled, _batches(examples, 2))   # re-encoded, new Batches: the same arrays
    assert again.tolist() == recorded.tolist() and len(calls) == 5
    again[:] = -1   # the caller's copy
    assert predict(pooled, _batches(examples, 2)).tolist() == first.tolist() and len(calls) == 5
    assert predict(per_token, _batches(examples, 2), reduce=_tokens_of) == spans
    assert len(calls) == 5   # the same code, no closure: given back
    predict(pooled, _batches(examples, 3))   # other batches
    predict(pooled, _batches(examples[:3], 2))   # other inputs
    assert len(calls) == 7
    embedding = pooled.weights[0]
    embedding.assign(embedding.numpy() * 2)   # other weights: run, and the new outputs
    assert predict(pooled, _batches(examples, 2)).tolist() == (2 * first).tolist() and len(calls) == 8


def _tokens_of(row):
    return int((row > 0).sum())
