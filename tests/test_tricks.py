"""The leaderboard tricks (clue.tricks, issue 16): EMA, layer-wise learning-rate decay, R-Drop, FGM.

Backend-neutral (``train_on_batch``, ``fit``): CI runs them on TensorFlow; ``KERAS_BACKEND=jax pytest
tests/test_tricks.py`` runs the same on JAX, and ``KERAS_BACKEND=torch`` on PyTorch (torch installed).
"""

import json
import sys
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from clue import demo, heads, tricks
from clue.models import build_transformer_model
from clue.optimizers import AdaFactor, AdamW
from clue.training import BestOnDev

REPO = Path(__file__).resolve().parents[1]
TINY = dict(vocab_size=40, hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def tiny_classifier(classes=3, **config):
    encoder = build_transformer_model(config=dict(TINY, **config), seed=1)
    return heads.classifier(encoder, classes, seed=2)


def token_batch(rng, batch=6, length=7, classes=3):
    ids = rng.integers(1, TINY["vocab_size"], (batch, length)).astype("int32")
    ids[:, -2:] = 0   # padding
    return [ids, np.zeros_like(ids)], rng.integers(0, classes, batch)


def h5_layer_arrays(path):
    """{dataset path: array} of a weights file's model part (not the optimizer's)."""
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) and not name.startswith("optimizer") else None)
    return arrays


# ---------------------------------------------------------------------------------------------------------
# EMA

OPTIMIZERS = {   # name -> (make(**options), batches whose update is applied: index -> bool)
    "adafactor": (lambda **o: AdaFactor(learning_rate=0.05, **o), lambda i: True),
    "adafactor-accum3": (lambda **o: AdaFactor(learning_rate=0.05, grad_accum_steps=3, **o), lambda i: i % 3 == 0),
    "adamw": (lambda **o: AdamW(0.01, weight_decay=0.01, **o), lambda i: True),
    "adamw-accum3": (lambda **o: AdamW(0.01, weight_decay=0.01, gradient_accumulation_steps=3, **o),
                     lambda i: (i + 1) % 3 == 0),
}


class StepWeights(keras.callbacks.Callback):
    """The model's weights after every batch."""

    def on_train_begin(self, logs=None):
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append([np.array(w) for w in self.model.get_weights()])


def ema_fit(tmp_path, optimizer, ema, epochs=2, scores=None, every=None):
    """(model, weights after every batch) of 7 batches per epoch; dev "scores" (by default each epoch the
    best so far, so the file holds the last epoch's weights) every ``every`` batches and at epoch ends."""
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="tanh"),
                              keras.layers.Dense(3, activation="softmax")])
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(28, 5)).astype("float32"), rng.integers(0, 3, 28)
    model.compile(optimizer=OPTIMIZERS[optimizer][0](**tricks.optimizer_options(model, ema=ema)),
                  loss="sparse_categorical_crossentropy")
    scores = iter(scores or range(epochs))
    best = BestOnDev(lambda m: next(scores), "accuracy", tmp_path / "best.weights.h5", tmp_path / "state.json",
                     every=every)
    steps = StepWeights()
    model.fit(x, y, batch_size=4, epochs=epochs, shuffle=False, verbose=0,
              callbacks=[steps, *tricks.scored_with_average([best], ema)])
    return model, steps.steps


def assert_best_file_holds(tmp_path, model, weights):
    """Assert that ``ema_fit``'s best-weights file holds ``weights`` (``model``'s, as arrays); its arrays."""
    model.set_weights(weights)
    model.save_weights(tmp_path / "expected.weights.h5")
    saved, expected = h5_layer_arrays(tmp_path / "best.weights.h5"), h5_layer_arrays(tmp_path / "expected.weights.h5")
    assert saved.keys() == expected.keys() and saved
    for key in expected:
        np.testing.assert_allclose(saved[key], expected[key], rtol=1e-5, atol=1e-7, err_msg=key)
    return saved


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_ema_weights_are_the_moving_average_of_the_applied_steps(tmp_path, optimizer):
    decay = 0.8
    model, steps = ema_fit(tmp_path, optimizer, decay)
    (tmp_path / "plain").mkdir()
    _, plain_steps = ema_fit(tmp_path / "plain", optimizer, None)
    # the average does not change training: the raw weights after every batch are the plain run's
    assert all(np.array_equal(a, b) for s, t in zip(steps, plain_steps) for a, b in zip(s, t))

    applied = OPTIMIZERS[optimizer][1]
    average = None
    for i, weights in enumerate(steps):   # numpy: the first applied update starts it, as Keras
        if applied(i):
            average = weights if average is None else [decay * a + (1 - decay) * w
                                                      for a, w in zip(average, weights)]
    if optimizer.endswith("accum3"):   # the average moves less often than the weights do
        assert sum(map(applied, range(len(steps)))) < len(steps)
    saved = assert_best_file_holds(tmp_path, model, average)
    # and they are not the raw weights of the last step
    assert not np.allclose(saved[next(iter(saved))], steps[-1][0], atol=1e-6)


def afqmc_run(tmp_path, out, *flags):
    sys.path.insert(0, str(REPO / "tasks"))
    import afqmc

    data = tmp_path / "data"
    if not data.exists():
        demo.make_afqmc(data / "afqmc", seed=1, sizes={"train": 48, "dev": 16, "test": 8})
    return afqmc.main(["--data-dir", str(data), "--model", "tiny", "--batch-size", "8", "--maxlen", "24",
                       "--verbose", "0", "--seed", "5", "--optimizer", "adafactor", "--lr", "1e-3",
                       "--output-dir", str(tmp_path / out), *flags])


def h5_all(path):
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return arrays


def test_ema_resumes_exactly_and_its_averages_are_in_the_backup(tmp_path):
    keep = ("--ema", "0.9", "--grad-accum", "2", "--keep-backup")   # the backups are compared
    afqmc_run(tmp_path, "whole", "--epochs", "2", *keep)
    afqmc_run(tmp_path, "cut", "--epochs", "1", *keep)
    afqmc_run(tmp_path, "cut", "--epochs", "2", *keep, "--resume")
    for name in ("afqmc_backup/latest.weights.h5", "afqmc.weights.h5"):
        a, b = h5_all(tmp_path / "whole" / "weights" / name), h5_all(tmp_path / "cut" / "weights" / name)
        assert a.keys() == b.keys()
        assert all(np.array_equal(a[k], b[k]) for k in a), name
    assert (tmp_path / "whole/results/afqmc_predict.json").read_text() == \
        (tmp_path / "cut/results/afqmc_predict.json").read_text()
    # (had the averages not been in the backup, the resumed run's would restart from the weights, and
    # epoch 2's averaged best weights would differ)
    state = json.loads((tmp_path / "cut/logs/afqmc.state.json").read_text())
    assert state["flags"]["ema"] == 0.9


def test_ema_with_eval_every_scores_and_keeps_the_average_within_an_epoch(tmp_path):
    decay = 0.8
    # dev after batches 3, 6 and 7 (the epoch's end): the best is batch 6's
    model, steps = ema_fit(tmp_path, "adafactor", decay, epochs=1, scores=[0.1, 0.9, 0.5], every=3)
    (tmp_path / "plain").mkdir()
    _, plain_steps = ema_fit(tmp_path / "plain", "adafactor", None, epochs=1)
    assert all(np.array_equal(a, b) for s, t in zip(steps, plain_steps) for a, b in zip(s, t))   # swapped back
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["evaluations"] == [[3, 0.1], [6, 0.9], [7, 0.5]] and state["best_step"] == 6
    average = steps[0]
    for weights in steps[1:6]:   # the average after batch 6
        average = [decay * a + (1 - decay) * w for a, w in zip(average, weights)]
    saved = assert_best_file_holds(tmp_path, model, average)
    assert not np.allclose(saved[next(iter(saved))], steps[5][0], atol=1e-6)   # not batch 6's raw weights


# ---------------------------------------------------------------------------------------------------------
# Layer-wise learning-rate decay

def test_layer_lr_multipliers_follow_the_layers():
    model = tiny_classifier()
    factors = tricks.layer_lr_multipliers(model, 0.5)
    assert factors["Transformer-2-FeedForward/output/kernel"] == 1.0            # top layer
    assert factors["Transformer-1-MultiHeadSelfAttention/query/kernel"] == 0.5
    assert factors["Transformer-0-FeedForward-Norm/gamma"] == 0.25
    assert factors["Embedding-Token/embeddings"] == factors["Embedding-Norm/beta"] == 0.125
    assert "classifier/kernel" not in factors                                  # the head: 1
    assert tricks.optimizer_options(model, layer_lr_decay=1.0) == {}


DECAY_OPTIMIZERS = {
    "adafactor": lambda **o: AdaFactor(learning_rate=0.1, **o),
    "adamw": lambda **o: AdamW(0.01, weight_decay=0.1, **o),
}


def trained(make, model, weights, gradients, **options):
    """``model``'s weights after ``make(**options)`` applies each of ``gradients`` (lists of arrays, one
    per trainable variable) from ``weights``: the optimizer alone, eagerly, on any backend."""
    model.set_weights(weights)
    optimizer = make(**options)
    for step in gradients:
        optimizer.apply([keras.ops.convert_to_tensor(g) for g in step], model.trainable_variables)
    return [np.array(w) for w in model.get_weights()]


def random_gradients(model, rng, steps):
    return [[rng.normal(scale=0.1, size=v.shape).astype("float32") for v in model.trainable_variables]
            for _ in range(steps)]


@pytest.mark.parametrize("optimizer", DECAY_OPTIMIZERS)
def test_layer_lr_decay_one_is_the_plain_optimizer_bitwise(optimizer):
    model, rng = tiny_classifier(), np.random.default_rng(4)
    weights = model.get_weights()
    gradients = random_gradients(model, rng, 3)
    make = DECAY_OPTIMIZERS[optimizer]
    plain = trained(make, model, weights, gradients)
    ones = tricks.layer_lr_multipliers(model, 1.0)   # every factor given, all 1
    decayed = trained(make, model, weights, gradients, lr_multipliers=ones)
    assert all(np.array_equal(a, b) for a, b in zip(plain, decayed))
    assert not np.array_equal(plain[0], weights[0])


@pytest.mark.parametrize("optimizer", DECAY_OPTIMIZERS)
def test_layer_lr_decay_scales_each_layers_update(optimizer):
    model, rng = tiny_classifier(), np.random.default_rng(5)
    weights = [np.array(w) for w in model.get_weights()]
    gradient = random_gradients(model, rng, 1)
    make = DECAY_OPTIMIZERS[optimizer]
    plain = trained(make, model, weights, gradient)
    factors = tricks.layer_lr_multipliers(model, 0.5)
    decayed = trained(make, model, weights, gradient, **tricks.optimizer_options(model, layer_lr_decay=0.5))
    seen = set()
    for variable, w0, a, b in zip(model.weights, weights, plain, decayed):
        factor = factors.get(variable.path, 1.0)
        seen.add(factor)
        step, expected = b - w0, factor * (a - w0)
        # float32 weights: the step is known to a few ulps of the weight
        np.testing.assert_allclose(step, expected, rtol=1e-4, atol=4 * float(np.spacing(np.abs(w0)).max()),
                                   err_msg=variable.path)
        assert np.abs(a - w0).max() > 0, variable.path
    assert seen == {1.0, 0.5, 0.25, 0.125}


# ---------------------------------------------------------------------------------------------------------
# Flags

def test_trick_flags_are_checked_and_recorded(tmp_path, capsys):
    from clue import cli, training

    _, args = cli.parse_args("tnews", ["--ema", "0.999", "--layer-lr-decay", "0.9", "--rdrop", "1", "--fgm", "1"])
    assert (args.ema, args.layer_lr_decay, args.rdrop, args.fgm) == (0.999, 0.9, 1.0, 1.0)
    for flags, message in ((["--ema", "1"], "--ema must be between 0 and 1"),
                           (["--layer-lr-decay", "0"], "--layer-lr-decay must be above 0"),
                           (["--rdrop", "-1"], "--rdrop must be at least 0"),
                           (["--fgm", "-1"], "--fgm must be at least 0")):
        with pytest.raises(SystemExit):
            cli.parse_args("tnews", flags)
        assert message in capsys.readouterr().err
    for span_task in ("cmrc2018", "cluener"):
        with pytest.raises(SystemExit):
            cli.parse_args(span_task, ["--rdrop", "1"])
        assert f"--rdrop does not apply to {span_task}" in capsys.readouterr().err
    # a resume with another trick is refused
    state = tmp_path / "tnews.state.json"
    state.write_text(json.dumps({"flags": {"ema": 0.999, "layer_lr_decay": None, "rdrop": None}}))
    assert {"ema", "layer_lr_decay", "rdrop", "fgm"} <= set(training.RESUME_FLAGS)
    with pytest.raises(ValueError, match="--ema 0.999 -> None"):
        training.check_resume_flags(state, {"ema": None, "layer_lr_decay": None, "rdrop": None})


# ---------------------------------------------------------------------------------------------------------
# R-Drop

def loss_and_gradients(model, loss, x, y):
    """(loss, [gradient per trainable variable]) of ``loss(y, model(x, training=True))`` on this backend."""
    if keras.backend.backend() == "jax":
        import jax

        def value(trainable):
            probs, _ = model.stateless_call(trainable, [v.value for v in model.non_trainable_variables], x,
                                            training=True)
            return loss(y, probs)

        result, grads = jax.value_and_grad(value)([v.value for v in model.trainable_variables])
        return np.asarray(result), [np.asarray(g) for g in grads]
    if keras.backend.backend() == "torch":
        import torch

        result = loss(y, model(x, training=True))
        grads = torch.autograd.grad(result, [v.value for v in model.trainable_variables], allow_unused=True)
        return (result.detach().cpu().numpy(),
                [np.zeros(v.shape, "float32") if g is None else g.detach().cpu().numpy()
                 for v, g in zip(model.trainable_variables, grads)])
    import tensorflow as tf

    with tf.GradientTape() as tape:
        result = loss(y, model(x, training=True))
    grads = tape.gradient(result, model.trainable_variables)
    return result.numpy(), [tf.convert_to_tensor(g).numpy() for g in grads]


def twice(batch):
    return keras.tree.map_structure(lambda a: np.repeat(a, 2, axis=0), batch)


def choice_batch(rng, batch=4, choices=3):
    """((token_ids, segment_ids, choice_mask), labels) for ``heads.choice_scorer``; the last choice of the
    first two questions is padding."""
    (ids, segments), _ = token_batch(rng, batch * choices)
    mask = np.ones((batch, choices), "int32")
    mask[:2, -1] = 0
    shape = (batch, choices, ids.shape[-1])
    return [ids.reshape(shape), segments.reshape(shape), mask], rng.integers(0, choices - 1, batch)


@pytest.mark.parametrize("head", ["classifier", "choices"])
def test_rdrop_without_dropout_is_the_plain_loss_and_gradients(head):
    rng = np.random.default_rng(6)
    if head == "classifier":
        model, (x, y) = tiny_classifier(), token_batch(rng, batch=8)
    else:
        model = heads.choice_scorer(build_transformer_model(config=TINY, seed=1), 3, seed=2)
        x, y = choice_batch(rng)
    plain = keras.losses.SparseCategoricalCrossentropy()
    _, rdrop_loss = tricks.rdrop([], "sparse_categorical_crossentropy", alpha=4.0)
    loss, grads = loss_and_gradients(model, plain, x, y)
    x2, y2 = twice((x, y))
    loss2, grads2 = loss_and_gradients(model, rdrop_loss, x2, y2)
    assert abs(float(loss2) - float(loss)) <= 1e-6
    worst = max(float(np.abs(a - b).max()) for a, b in zip(grads, grads2))
    assert worst <= 1e-6, worst
    assert max(float(np.abs(g).max()) for g in grads) > 1e-3   # the gradients are not all ~0
    if head == "choices":
        return
    # with dropout, the two copies of an example get different masks: the KL term is there
    dropped = tiny_classifier(hidden_dropout_prob=0.1)
    probs = keras.ops.convert_to_numpy(dropped(x2, training=True))
    assert np.abs(probs[0::2] - probs[1::2]).max() > 1e-4


def test_rdrop_loss_is_mean_task_loss_plus_alpha_kl():
    rng = np.random.default_rng(7)
    probs = rng.dirichlet(np.ones(4), size=6).astype("float32")   # 3 pairs
    probs[4:, 3] = 0.0                                            # a padding choice (c3), zero on both sides
    probs[4:] /= probs[4:].sum(-1, keepdims=True)
    labels = np.repeat(rng.integers(0, 3, 3), 2)
    got = float(tricks.RDropLoss("sparse_categorical_crossentropy", 0.5)(labels, probs))
    p, q = probs[0::2].astype("float64"), probs[1::2].astype("float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = lambda a, b: np.where(a > 0, a * np.log(a / b), 0.0).sum(-1)   # noqa: E731
        expected = -np.log(probs[np.arange(6), labels]).mean() + 0.5 * ((kl(p, q) + kl(q, p)) / 2).mean()
    assert np.isfinite(got) and got == pytest.approx(expected, rel=1e-5)


def test_rdrop_batches_hold_each_example_twice():
    from clue import batching

    examples = [(np.arange(1, n + 2), np.zeros(n + 1, "int32"), n % 3) for n in range(10)]
    train = batching.Batches(examples, batching.pad_inputs, 4, shuffle=True, seed=1)
    doubled, _ = tricks.rdrop(train, "sparse_categorical_crossentropy", 1.0)
    doubled.set_epoch(2)
    assert train.epoch == 2 and len(doubled) == len(train)
    (ids, segments), labels = train[0]
    (ids2, segments2), labels2 = doubled[0]
    assert np.array_equal(ids2[0::2], ids) and np.array_equal(ids2[1::2], ids)
    assert np.array_equal(labels2, np.repeat(labels, 2))


def test_all_tricks_train_a_task_script_whose_weights_load_without_them(tmp_path):
    tricks_flags = ["--rdrop", "1", "--fgm", "0.5", "--ema", "0.9", "--layer-lr-decay", "0.8"]
    score = afqmc_run(tmp_path, "run", "--epochs", "1", *tricks_flags)
    assert 0 <= score <= 1
    state = json.loads((tmp_path / "run/logs/afqmc.state.json").read_text())
    assert {k: state["flags"][k] for k in ("rdrop", "fgm", "ema", "layer_lr_decay")} == \
        {"rdrop": 1.0, "fgm": 0.5, "ema": 0.9, "layer_lr_decay": 0.8}
    predicted = (tmp_path / "run/results/afqmc_predict.json").read_text()
    afqmc_run(tmp_path, "run", "--mode", "predict")   # the plain model loads the best weights
    assert (tmp_path / "run/results/afqmc_predict.json").read_text() == predicted


# ---------------------------------------------------------------------------------------------------------
# FGM

def one_step(model, weights, batch, embedding_shift=None, eager=True):
    """``model``'s weights after one AdamW step on ``batch`` from ``weights`` (the token embedding moved by
    ``embedding_shift`` for the step and back after it, when given), and the step's loss. Eager unless
    ``eager`` is False: tracing the tiny model's train step takes seconds."""
    model.set_weights(weights)
    embedding = next(v for v in model.trainable_variables if v.path == tricks.TOKEN_EMBEDDING)
    if embedding_shift is not None:
        embedding.assign(embedding + embedding_shift)
    model.compile(optimizer=AdamW(1e-2, weight_decay=0.01), loss="sparse_categorical_crossentropy",
                  run_eagerly=eager)
    loss = model.train_on_batch(*batch)
    if embedding_shift is not None:
        embedding.assign(embedding - embedding_shift)
    return [np.array(w) for w in model.get_weights()], float(loss)


def test_fgm_with_epsilon_0_is_the_plain_step():
    model, rng = tiny_classifier(), np.random.default_rng(8)
    weights, batch = model.get_weights(), token_batch(rng)
    plain, plain_loss = one_step(model, weights, batch)
    adversarial, loss = one_step(tricks.fgm(model, 0.0), weights, batch)
    assert loss == plain_loss
    assert all(np.array_equal(a, b) for a, b in zip(plain, adversarial))


def test_fgm_step_is_perturb_plain_step_unperturb():
    model, rng = tiny_classifier(), np.random.default_rng(9)
    weights, batch = [np.array(w) for w in model.get_weights()], token_batch(rng)
    epsilon = 0.5
    _, grads = loss_and_gradients(model, keras.losses.SparseCategoricalCrossentropy(), *batch)
    g = grads[[v.path for v in model.trainable_variables].index(tricks.TOKEN_EMBEDDING)]
    shift = epsilon * g / (np.sqrt((g.astype("float64") ** 2).sum()) + 1e-8)   # by hand, in numpy
    by_hand, hand_loss = one_step(model, weights, batch, shift.astype("float32"))
    adversarial, loss = one_step(tricks.fgm(model, epsilon), weights, batch, eager=False)   # as in fit
    plain, plain_loss = one_step(model, weights, batch)
    assert loss == pytest.approx(hand_loss, abs=1e-6) and abs(loss - plain_loss) > 1e-4
    worst = max(float(np.abs(a - b).max()) for a, b in zip(by_hand, adversarial))
    assert worst <= 1e-6, worst
    assert max(float(np.abs(a - b).max()) for a, b in zip(plain, adversarial)) > 1e-4
