"""Run under KERAS_BACKEND=torch by tests/test_torch_backend.py: the PyTorch-only paths of clue against the
code the other backends run, on the same inputs. Prints one JSON object of differences.

    python tests/torch_paths.py
"""

import json
import sys
from pathlib import Path

import keras
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from clue.heads import classifier   # noqa: E402
from clue.layers import Dropout, LayerNorm, gelu_erf, gelu_erf_written_out   # noqa: E402
from clue.models import build_transformer_model   # noqa: E402
from clue.optimizers import AdaFactor, AdamW   # noqa: E402


def value_and_grads(fn, x, weights=()):
    """fn(x) and the gradients, for x and ``weights``, of a weighted sum of it (no term cancels)."""
    x = torch.tensor(x, requires_grad=True)
    y = fn(x)
    loss = (y * torch.cos(torch.arange(y.numel(), dtype=y.dtype)).reshape(y.shape)).sum()
    grads = torch.autograd.grad(loss, [x, *[w.value for w in weights]])
    return [y.detach().numpy()] + [g.numpy() for g in grads]


def largest_difference(a, b):
    return max(float(np.abs(p - q).max()) for p, q in zip(a, b))


def main():
    assert keras.backend.backend() == "torch"
    rng = np.random.default_rng(0)
    result = {}
    x = rng.normal(0, 3, (4, 7, 33)).astype("float32")
    result["gelu"] = largest_difference(value_and_grads(gelu_erf, x), value_and_grads(gelu_erf_written_out, x))
    x = rng.normal(0.5, 2.0, (3, 5, 64)).astype("float32")
    for zero_mean, scale in ((True, True), (False, False)):
        layer = LayerNorm(epsilon=1e-12, zero_mean=zero_mean, scale=scale, center=scale)
        layer.build(x.shape)
        if scale:
            layer.gamma.assign(rng.normal(1.0, 0.2, 64).astype("float32"))
            layer.beta.assign(rng.normal(0.0, 0.2, 64).astype("float32"))
        weights = [layer.gamma, layer.beta] if scale else []
        assert np.array_equal(keras.ops.convert_to_numpy(layer(x)), keras.ops.convert_to_numpy(layer.fused(x)))
        result[f"layer_norm zero_mean={zero_mean}"] = largest_difference(
            value_and_grads(layer.fused, x, weights), value_and_grads(layer.written_out, x, weights))
    result["adamw in place vs Keras's update"] = adamw_difference(rng)
    result.update(dropout_check())
    for accum in (1, 2):
        result[f"adafactor {accum} in place vs keras.ops"] = adafactor_difference(rng, accum)
    print(json.dumps(result))


CONFIG = dict(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
              hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
              max_position_embeddings=64, type_vocab_size=2)


def weights_after(make_optimizer, rng_seed, steps=5):
    """Weights (optimizer state included) after ``steps`` train steps of a tiny classifier."""
    rng = np.random.default_rng(rng_seed)
    model = classifier(build_transformer_model(config=CONFIG, seed=0), 2, seed=0)
    model.compile(optimizer=make_optimizer(), loss="sparse_categorical_crossentropy")
    for _ in range(steps):
        x = [rng.integers(1, 300, (4, 16)).astype("int32"), np.zeros((4, 16), "int32")]
        model.train_on_batch(x, rng.integers(0, 2, 4))
    return [keras.ops.convert_to_numpy(w) for w in model.weights + model.optimizer.variables]


def dropout_check(rate=0.1, shape=(400, 1000)):
    """clue's PyTorch dropout in training: outputs x / keep or 0, its gradient the same mask / keep, and the
    fraction kept (how many standard deviations from 1 - rate)."""
    x = torch.tensor(np.random.default_rng(1).uniform(1, 2, shape).astype("float32"), requires_grad=True)
    y = Dropout(rate, seed=0)(x, training=True)
    (grad,) = torch.autograd.grad(y.sum(), [x])
    kept = (y != 0).detach()
    keep = 1.0 - rate
    scaled = x.detach() * torch.tensor(1.0 / keep, dtype=torch.float32)
    sigma = float(np.sqrt(keep * rate / kept.numel()))
    return {"dropout output vs x / keep": float((y.detach() - torch.where(kept, scaled, 0.0)).abs().max()),
            "dropout gradient vs mask / keep": float((grad - torch.where(kept, 1.0 / keep, 0.0)).abs().max()),
            "dropout kept fraction, sigmas": abs(float(kept.float().mean()) - keep) / sigma}


def adamw_difference(rng):
    """AdamW (weight decay on) with clue's in-place update against Keras's own update (a layer-rate multiplier
    on one weight, so that the step size is computed for two rates)."""
    calls = []

    def make(in_place):
        optimizer = AdamW(1e-3, weight_decay=0.01, lr_multipliers={"classifier/kernel": 0.5})
        if in_place:
            method = optimizer.update_in_place
            optimizer.update_in_place = lambda *args: calls.append(1) or method(*args)
        else:
            optimizer.update_in_place = lambda g, v, lr: keras.optimizers.AdamW.update_step(optimizer, g, v, lr)
        return optimizer

    seed = int(rng.integers(1 << 30))
    ours, theirs = weights_after(lambda: make(True), seed), weights_after(lambda: make(False), seed)
    assert calls, "the in-place update never ran"
    return largest_difference(ours, theirs)


def adafactor_difference(rng, accum):
    """AdaFactor with its in-place update on PyTorch against its keras.ops update (a layer-rate multiplier
    on one weight, so that path runs too)."""
    calls = []

    def make(in_place):
        optimizer = AdaFactor(5e-3, grad_accum_steps=accum, lr_multipliers={"classifier/kernel": 0.5})
        if in_place:   # counted, so that the comparison cannot pass by never taking this path
            method = optimizer.update_in_place
            optimizer.update_in_place = lambda *args: calls.append(1) or method(*args)
        else:   # every weight takes the keras.ops path
            optimizer.update_in_place = optimizer.update_with_ops
        return optimizer

    seed = int(rng.integers(1 << 30))
    ours, theirs = weights_after(lambda: make(True), seed), weights_after(lambda: make(False), seed)
    assert calls, "the in-place update never ran"
    start = weights_after(lambda: make(True), seed, steps=0)   # the model's weights only (no optimizer yet)
    assert largest_difference(start, ours) > 0, "no weight moved"
    return largest_difference(ours, theirs)


if __name__ == "__main__":
    main()
