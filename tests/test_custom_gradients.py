"""The hand-written gradients of clue.layers (gelu_erf, LayerNorm) equal autodiff of the plain formulas.

They exist to save memory and time in training (scripts/benchmark.py measures it); the forward values are
the encoder tests' business (bert4keras parity), the gradients are checked here."""

import math

import numpy as np
import pytest
import tensorflow as tf

from clue.layers import LayerNorm, gelu_erf


def plain_gelu(x):
    return 0.5 * x * (1.0 + tf.math.erf(x / math.sqrt(2.0)))


def plain_norm(x, gamma, beta, epsilon, zero_mean):
    if zero_mean:
        x = x - tf.reduce_mean(x, axis=-1, keepdims=True)
    x = x / tf.sqrt(tf.reduce_mean(tf.square(x), axis=-1, keepdims=True) + epsilon)
    return x * gamma + beta if gamma is not None else x


def grads(fn, x, *variables):
    """fn(x) and the gradients of a weighted sum of it (weights vary, so no term cancels)."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
        loss = tf.reduce_sum(y * tf.reshape(tf.cos(tf.range(tf.size(y), dtype=y.dtype)), y.shape))
    return y, tape.gradient(loss, [x, *variables])


def test_gelu_gradient_matches_autodiff():
    x = tf.constant(np.random.default_rng(0).normal(0, 3, (4, 7, 33)), tf.float32)
    ours, (g_ours,) = grads(gelu_erf, x)
    plain, (g_plain,) = grads(plain_gelu, x)
    np.testing.assert_array_equal(ours.numpy(), plain.numpy())          # forward unchanged, bit for bit
    np.testing.assert_allclose(g_ours.numpy(), g_plain.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("zero_mean,scale", [(True, True), (False, False)])
def test_layer_norm_gradient_matches_autodiff(zero_mean, scale):
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(0.5, 2.0, (3, 5, 64)), tf.float32)
    layer = LayerNorm(epsilon=1e-7, zero_mean=zero_mean, scale=scale, center=scale)
    layer.build(x.shape)
    if scale:
        layer.gamma.assign(rng.normal(1.0, 0.2, 64).astype("float32"))
        layer.beta.assign(rng.normal(0.0, 0.2, 64).astype("float32"))
    variables = [layer.gamma.value, layer.beta.value] if scale else []
    ours, g_ours = grads(layer, x, *variables)
    plain, g_plain = grads(lambda t: plain_norm(t, *(variables or [None, None]), 1e-7, zero_mean), x, *variables)
    np.testing.assert_array_equal(ours.numpy(), plain.numpy())
    for a, b in zip(g_ours, g_plain):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)
