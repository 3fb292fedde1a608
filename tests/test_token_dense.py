"""clue.layers.TokenDense: keras.layers.Dense's outputs and gradients, with the kernel's gradient taken as a
2-D matmul over all tokens (what makes JAX's train step on CPU faster; scripts/benchmark.py measures it)."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from clue.layers import TokenDense


def pair(units, features, activation=None):
    """A TokenDense and a keras Dense with the same weights."""
    ours, theirs = TokenDense(units, activation=activation), keras.layers.Dense(units, activation=activation)
    ours.build((None, features))
    theirs.build((None, features))
    rng = np.random.default_rng(0)
    ours.set_weights([rng.normal(size=w.shape).astype("float32") for w in ours.get_weights()])
    theirs.set_weights(ours.get_weights())
    return ours, theirs


@pytest.mark.parametrize("shape", [(5, 7), (3, 4, 7), (2, 3, 4, 7)])
def test_equals_keras_dense_and_its_gradients(shape):
    ours, theirs = pair(6, shape[-1], activation="tanh")
    x = tf.constant(np.random.default_rng(1).normal(size=shape).astype("float32"))
    results = []
    for layer in (ours, theirs):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * tf.reshape(tf.range(tf.size(y), dtype=y.dtype), y.shape) / 100)
        results.append([y, *tape.gradient(loss, [x, *layer.trainable_variables])])
    assert results[0][0].shape == (*shape[:-1], 6)
    for a, b in zip(*results):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


JAX_KERNEL_GRADIENT = textwrap.dedent("""
    import jax, keras, numpy as np
    from clue.layers import TokenDense
    for cls in (TokenDense, keras.layers.Dense):
        layer = cls(6)
        layer.build((None, 7))
        def loss(weights, x):
            return (layer.stateless_call(weights, [], x)[0] ** 2).sum()
        weights, x = [w.value for w in layer.trainable_variables], np.ones((3, 4, 7), "float32")
        text = jax.jit(jax.grad(loss)).lower(weights, x).as_text()
        print(cls.__name__, "contracting_dims = [0, 1] x [0, 1]" in text, "dot_general" in text)
""")


def test_jax_takes_the_kernel_gradient_with_one_contracting_axis():
    """keras.layers.Dense on a (batch, length, features) input gives JAX a kernel gradient contracting two axes
    (the control, so this test can fail); TokenDense gives it one."""
    pytest.importorskip("jax")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", JAX_KERNEL_GRADIENT], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split("\n")[:2] == ["TokenDense False True", "Dense True True"], proc.stdout
