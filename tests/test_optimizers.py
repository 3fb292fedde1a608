"""clue.optimizers against their references.

AdaFactor against bert4keras 0.11.5's own AdaFactor (and its gradient accumulation), as the CLUE-bert4keras
scripts configure it: both train the same tiny random Google-format BERT (dropout 0, [CLS] -> Dense softmax
with the same initial head) on the same 10 batches of varying length, and must end with the same weights
(<= 1e-5). Ours trains on TensorFlow in-process and on JAX and PyTorch in subprocesses (the backend is
fixed at import).

The attention key biases are compared apart. Softmax over the keys is unchanged when every score of a query
moves by the same amount, which is what a key bias adds (q . b_k), so their true gradient is exactly 0 and
what either side computes is round-off (~1e-9). AdaFactor divides the gradient by sqrt(v) ~ |g|, so that
round-off becomes a full-size step of random sign, and the two sides' key biases drift apart by up to
lr x max(rms(b), 1e-3) per update without either being wrong. The tests assert that their gradient is
round-off and that their drift stays within what such steps can add up to.

AdamW: on TensorFlow an embedding's gradient is an IndexedSlices with one row per token looked up, and
Keras's Adam squares those rows before adding them up (g1^2 + g2^2 for a token seen twice, not
(g1 + g2)^2). One step of clue.optimizers.AdamW on TensorFlow must equal one on JAX and on PyTorch, whose
gradients are dense.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import checkpoint_fixtures as cf
from bert4keras_oracle import run_bert4keras
from conftest import IN_CI
from clue.checkpoints import variable_names
from clue.heads import classifier
from clue.models import build_transformer_model
from clue.optimizers import AdaFactor, AdamW

HERE = Path(__file__).resolve().parent
LR, CLASSES, STEPS = 5e-4, 3, 10
KEY_BIAS = "attention/self/key/bias"
# (grad_accum_steps, min_dim_size_to_factor): the CLUE scripts' three optimizers (10**6: nothing factored),
# and the factored second moments once (every 64 x 64 and larger matrix is factored at 32)
CASES = [(1, 10**6), (2, 10**6), (4, 10**6), (1, 32)]
JAX_CASES = [(2, 10**6)]   # the accumulating path, which holds the plain one

B4K_TRAIN = r'''
import json, sys
import numpy as np
from bert4keras.backend import keras, K
# Patch 1: tf_keras 2.21's keras.optimizers.Optimizer is the new optimizer; bert4keras's AdaFactor is written
# for the OptimizerV2 API (slots, _resource_apply_dense), now keras.optimizers.legacy.Optimizer. It must be
# set before bert4keras.optimizers defines its classes.
keras.optimizers.Optimizer = keras.optimizers.legacy.Optimizer
import bert4keras.optimizers as b4k_optimizers
# Patch 2: its learning_rate property means to create a variable once, but tests hasattr(self,
# '__learning_rate') against a name-mangled attribute, so it creates one on every call, which tf.function
# refuses. The constant rate as a Python float is the same float32 number.
b4k_optimizers.AdaFactorBase.learning_rate = property(lambda self: self._learning_rate)
from bert4keras.models import build_transformer_model
from bert4keras.optimizers import AdaFactor, extend_with_gradient_accumulation

AdaFactorG = extend_with_gradient_accumulation(AdaFactor, name="AdaFactorG")
job = json.load(open(sys.argv[1]))
data = np.load(job["batches"])
head = np.load(job["head"])
for case in job["cases"]:
    K.clear_session()
    bert = build_transformer_model(job["config"], job["checkpoint"], return_keras_model=False)
    cls = keras.layers.Lambda(lambda x: x[:, 0])(bert.model.output)
    dense = keras.layers.Dense(len(head["bias"]), activation="softmax")
    model = keras.Model(bert.model.input, dense(cls))
    dense.set_weights([head["kernel"], head["bias"]])
    options = dict(learning_rate=job["lr"], beta1=0.9, min_dim_size_to_factor=case["min_dim"])
    # as CLUE-bert4keras's snippets.py: AdaFactor, or AdaFactorG with grad_accum_steps 2 or 4
    optimizer = (AdaFactor(**options) if case["accum"] == 1
                 else AdaFactorG(grad_accum_steps=case["accum"], **options))
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer)
    losses = [float(model.train_on_batch([data[f"token_ids_{n}"], data[f"segment_ids_{n}"]],
                                         data[f"labels_{n}"])) for n in range(job["steps"])]
    weights = {"head/kernel": dense.get_weights()[0], "head/bias": dense.get_weights()[1]}
    for layer, names in bert.variable_mapping().items():
        if layer in bert.layers:
            weights.update(zip(names, K.batch_get_value(bert.layers[layer].trainable_weights)))
    np.savez(case["output"], losses=np.array(losses), **{k.replace("/", "|"): v for k, v in weights.items()})
'''

ON_OTHER_BACKEND = r'''
import sys
import keras
import numpy as np
sys.path.insert(0, sys.argv[1])
import test_optimizers as t

inputs = t.load_inputs(sys.argv[2])
results = {f"adafactor_{accum}_{min_dim}": t.train_adafactor(inputs, accum, min_dim)[1]
           for accum, min_dim in t.JAX_CASES}
results["adamw"] = t.adamw_step(inputs, t.AdamW)
np.savez(sys.argv[3], backend=keras.backend.backend(),
         **{f"{case}:{name}": value for case, weights in results.items() for name, value in weights.items()})
'''


# ---------------------------------------------------------------------------------------------------------
# The model and data both sides train (also imported by the JAX and PyTorch subprocesses)


def write_inputs(root):
    """The tiny BERT checkpoint (dropout 0), 10 padded batches of 4 with lengths 6-40 (ids from a 300-token
    vocabulary, so tokens repeat within a batch) and the head's initial weights; returns their paths."""
    config_path, checkpoint, _ = cf.make_checkpoint(root, "bert", "tiny", seed=3)
    config = dict(json.loads(config_path.read_text()), hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0)
    config_path.write_text(json.dumps(config))
    rng = np.random.default_rng(5)
    arrays = {}
    for n in range(STEPS):
        arrays[f"token_ids_{n}"], arrays[f"segment_ids_{n}"] = cf.random_batch(
            config["vocab_size"], rng.integers(6, 41, 4).tolist(), seed=int(rng.integers(1 << 30)))
        arrays[f"labels_{n}"] = rng.integers(0, CLASSES, (4, 1)).astype("int32")
    np.savez(root / "batches.npz", **arrays)
    kernel = (0.02 * rng.standard_normal((config["hidden_size"], CLASSES))).astype("float32")
    np.savez(root / "head.npz", kernel=kernel, bias=np.zeros(CLASSES, "float32"))
    inputs = dict(config=str(config_path), checkpoint=str(checkpoint), batches=str(root / "batches.npz"),
                  head=str(root / "head.npz"))
    (root / "inputs.json").write_text(json.dumps(inputs))
    return inputs


def load_inputs(path):
    return json.loads(Path(path).read_text())


def batches(inputs):
    data = np.load(inputs["batches"])
    return [([data[f"token_ids_{n}"], data[f"segment_ids_{n}"]], data[f"labels_{n}"]) for n in range(STEPS)]


def our_model(inputs):
    encoder = build_transformer_model(inputs["config"], inputs["checkpoint"])
    model = classifier(encoder, CLASSES)
    head = np.load(inputs["head"])
    model.get_layer("classifier").set_weights([head["kernel"], head["bias"]])
    return encoder, model


def weights_by_name(encoder, model):
    """{checkpoint name: array} of the encoder, plus head/kernel and head/bias."""
    head = model.get_layer("classifier")
    pairs = [(head.kernel, "head/kernel"), (head.bias, "head/bias"), *variable_names(encoder)]
    return {name: keras.ops.convert_to_numpy(variable) for variable, name in pairs}


def train_adafactor(inputs, accum, min_dim):
    """(per-step losses, final weights, initial weights, number of factored weights) of our model trained
    on the batches."""
    encoder, model = our_model(inputs)
    before = weights_by_name(encoder, model)
    model.compile(optimizer=AdaFactor(LR, grad_accum_steps=accum, min_dim_size_to_factor=min_dim),
                  loss="sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)   # as clue.training.fit does
    factored = sum(len(m) == 2 for m in model.optimizer._second_moments)
    losses = [float(model.train_on_batch(x, y)) for x, y in batches(inputs)]
    after = weights_by_name(encoder, model)
    keras.backend.clear_session()
    return losses, after, before, factored


def adamw_step(inputs, optimizer_class):
    """Weights after one AdamW step on the first batch."""
    encoder, model = our_model(inputs)
    model.compile(optimizer=optimizer_class(1e-3, weight_decay=0.01), loss="sparse_categorical_crossentropy")
    model.train_on_batch(*batches(inputs)[0])
    weights = weights_by_name(encoder, model)
    keras.backend.clear_session()
    return weights


def adafactor_step_bound(bias):
    """The most one AdaFactor update can move an element of ``bias``: lr x max(rms(b), epsilon2) x |u|, with
    |u| <= sqrt(size) as rms(u) <= 1 after clipping (momentum averages such updates)."""
    return LR * max(float(np.sqrt(np.mean(bias ** 2))), 1e-3) * np.sqrt(bias.size)


def compare(ours, theirs, before, updates, step_bound=adafactor_step_bound, tolerance=1e-5):
    """Max abs difference of every weight but the key biases (asserted <= tolerance) and of the key biases
    (asserted within the drift their round-off gradients allow, see the module docstring: ``updates`` moves
    of at most ``step_bound(initial value)`` each, on both sides)."""
    assert ours.keys() == theirs.keys()
    diffs = {name: float(np.abs(ours[name] - theirs[name]).max()) for name in ours}
    others = {k: v for k, v in diffs.items() if KEY_BIAS not in k}
    keys = {k: v for k, v in diffs.items() if KEY_BIAS in k}
    worst = max(others, key=others.get)
    moved = max(float(np.abs(ours[k] - before[k]).max()) for k in others)
    print(f"  max abs weight diff, all but key biases: {others[worst]:.2e} ({worst}); key biases: "
          f"{max(keys.values()):.2e}; largest move of a weight in training {moved:.2e}")
    assert others[worst] <= tolerance, (worst, others[worst])
    assert moved > 10 * tolerance   # the comparison is not of barely moved copies
    for name, diff in keys.items():
        assert diff <= 2 * updates * step_bound(before[name]), (name, diff)
    return others[worst], max(keys.values())


def updates_applied(accum):
    """Updates that move weights in STEPS batches: every batch, or (bert4keras's accumulation) batches
    accum, 2 accum, ... (batch 0 applies the empty sum)."""
    return len(range(0 if accum == 1 else accum, STEPS, accum))


# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_inputs(tmp_path_factory.mktemp("optimizers"))


@pytest.fixture(scope="module")
def bert4keras_runs(inputs):
    """{(accum, min_dim): (losses, final weights)} of bert4keras's AdaFactor, one subprocess for all cases."""
    root = Path(inputs["config"]).parent
    cases = [dict(accum=accum, min_dim=min_dim, output=str(root / f"bert4keras_{accum}_{min_dim}.npz"))
             for accum, min_dim in CASES]
    (root / "job.json").write_text(json.dumps(dict(inputs, lr=LR, steps=STEPS, cases=cases)))
    run_bert4keras(B4K_TRAIN, root / "job.json")
    results = {}
    for (accum, min_dim), case in zip(CASES, cases):
        saved = dict(np.load(case["output"]))
        results[accum, min_dim] = (saved.pop("losses"), {k.replace("|", "/"): v for k, v in saved.items()})
    return results


@pytest.fixture(scope="module", params=["jax", "torch"])
def backend_runs(inputs, request):
    """(backend, results): our AdaFactor (JAX_CASES) and one AdamW step, trained on JAX or PyTorch (PyTorch
    has its own in-place AdamW update). PyTorch is not in the test extra, so it is skipped where absent."""
    backend = request.param
    if importlib.util.find_spec(backend) is None:
        if IN_CI and backend == "jax":
            pytest.fail("jax is in the test extra: CI must run the JAX backend")
        pytest.skip(f"{backend} not installed")
    root = Path(inputs["config"]).parent
    output = root / f"{backend}.npz"
    env = dict(os.environ, KERAS_BACKEND=backend, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", ON_OTHER_BACKEND, str(HERE), str(root / "inputs.json"),
                           str(output)], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-5000:]
    saved = np.load(output)
    assert str(saved["backend"]) == backend
    results = {}
    for key in saved.files:
        if ":" in key:
            case, name = key.split(":", 1)
            results.setdefault(case, {})[name] = saved[key]
    return backend, results


@pytest.mark.parametrize("accum,min_dim", CASES)
def test_adafactor_equals_bert4keras(inputs, bert4keras_runs, accum, min_dim):
    their_losses, theirs = bert4keras_runs[accum, min_dim]
    losses, ours, before, factored = train_adafactor(inputs, accum, min_dim)
    # at 32: the word and position embeddings, and per layer q, k, v, o and the two feed-forward kernels
    assert factored == (0 if min_dim == 10**6 else 2 + 2 * 6)
    print(f"\naccumulation {accum}, min_dim_size_to_factor {min_dim}: per-step loss, bert4keras vs ours")
    for n, (a, b) in enumerate(zip(their_losses, losses)):
        print(f"  step {n}: {a:.7f} {b:.7f} ({b - a:+.1e})")
    np.testing.assert_allclose(losses, their_losses, atol=1e-5)
    compare(ours, theirs, before, updates_applied(accum))


@pytest.mark.parametrize("accum,min_dim", JAX_CASES)
def test_adafactor_on_other_backend_equals_bert4keras(inputs, bert4keras_runs, backend_runs, accum, min_dim):
    backend, runs = backend_runs
    encoder, model = our_model(inputs)
    before = weights_by_name(encoder, model)
    print(f"\n{backend}, accumulation {accum}, min_dim_size_to_factor {min_dim}, against bert4keras:")
    compare(runs[f"adafactor_{accum}_{min_dim}"], bert4keras_runs[accum, min_dim][1], before,
            updates_applied(accum))


def test_key_bias_gradient_is_round_off(inputs):
    import tensorflow as tf

    encoder, model = our_model(inputs)
    x, y = batches(inputs)[0]
    pairs = variable_names(encoder)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, model(x)))
    grads = tape.gradient(loss, [v.value for v, _ in pairs])
    largest = {name: float(tf.reduce_max(tf.abs(tf.convert_to_tensor(g))))
               for (_, name), g in zip(pairs, grads)}
    keys = {k: v for k, v in largest.items() if KEY_BIAS in k}
    others = {k: v for k, v in largest.items() if KEY_BIAS not in k}
    print(f"\nlargest |gradient| of a key bias {max(keys.values()):.1e}; the other weights' largest |gradient| "
          f"is at least {min(others.values()):.1e}")
    assert len(keys) == 2 and max(keys.values()) <= 1e-6 * min(others.values())


def test_adamw_tensorflow_equals_other_backend(inputs, backend_runs):
    x, _ = batches(inputs)[0]
    tokens = x[0][x[0] != 0]
    assert len(np.unique(tokens)) < len(tokens)   # tokens repeat: the case IndexedSlices get wrong
    encoder, model = our_model(inputs)
    before = weights_by_name(encoder, model)
    backend, runs = backend_runs
    theirs = runs["adamw"]
    print(f"\nAdamW, one step, TensorFlow against {backend}:")
    # a key bias moves by about lr (1e-3) in Adam's first step, whatever the size of its round-off gradient
    compare(adamw_step(inputs, AdamW), theirs, before, updates=1, step_bound=lambda bias: 1e-3)
    keras_adamw = adamw_step(inputs, keras.optimizers.AdamW)
    diffs = {name: float(np.abs(keras_adamw[name] - theirs[name]).max())
             for name in theirs if KEY_BIAS not in name}
    worst = max(diffs, key=diffs.get)
    embeddings = [f"{name.split('/')[-1]} {diff:.1e}" for name, diff in diffs.items()
                  if name.startswith("bert/embeddings/") and "LayerNorm" not in name]
    print(f"  Keras's own AdamW on TensorFlow, against {backend}: {diffs[worst]:.2e} ({worst}); "
          f"{', '.join(embeddings)}")


def test_adafactor_accumulation_resumes_exactly(inputs, tmp_path):
    """Saved (as Keras's BackupAndRestore saves) in the middle of an accumulation window, loaded into a
    fresh model and continued: the same weights, bit for bit, as without the interruption. The batches are
    padded to one width so both runs trace one train function (the task scripts get the same from a tf.data
    pipeline of unknown lengths, ``clue.training.as_fit_data``)."""
    width = max(x[0].shape[1] for x, _ in batches(inputs)[:6])
    data = [([np.pad(a, ((0, 0), (0, width - a.shape[1]))) for a in x], y) for x, y in batches(inputs)[:6]]

    def fresh():
        encoder, model = our_model(inputs)
        model.compile(optimizer=AdaFactor(LR, grad_accum_steps=2), loss="sparse_categorical_crossentropy")
        model.optimizer.build(model.trainable_variables)
        return encoder, model

    encoder, model = fresh()
    for x, y in data:
        model.train_on_batch(x, y)
    whole = weights_by_name(encoder, model)

    encoder, model = fresh()
    for x, y in data[:3]:   # batch 2 applied batches 0-1 and started the next sum
        model.train_on_batch(x, y)
    model.save_weights(tmp_path / "cut.weights.h5")
    encoder, model = fresh()
    model.load_weights(tmp_path / "cut.weights.h5")
    assert int(model.optimizer.iterations) == 3
    assert max(float(np.abs(keras.ops.convert_to_numpy(s)).max()) for s in model.optimizer._gradient_sums) > 0
    for x, y in data[3:]:
        model.train_on_batch(x, y)
    resumed = weights_by_name(encoder, model)
    keras.backend.clear_session()
    assert all(np.array_equal(whole[name], resumed[name]) for name in whole)
