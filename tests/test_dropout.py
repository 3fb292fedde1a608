"""clue.layers.Dropout: the hashed keep mask JAX uses (rate, independence between elements and draws, the
same rows for a batch padded with more), and TensorFlow's replicas each drawing their rows of the mask one
device draws (float32, bfloat16, float16; splits with and without a remainder)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from keras import ops

from clue.layers import hashed_keep

REPO = Path(__file__).resolve().parents[1]
SHAPE = (8, 12, 64, 64)   # (batch, heads, length, length): 393,216 elements


def mask(shape, rate, seed):
    return np.asarray(ops.convert_to_numpy(hashed_keep(shape, rate, np.array(seed, np.uint32))))


def sigmas(observed, p, n):
    return abs(observed - p) / np.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_hashed_keep_keeps_one_minus_rate_independently(rate):
    keep, n = 1 - rate, np.prod(SHAPE)
    a, b, c = mask(SHAPE, rate, [7, 0]), mask(SHAPE, rate, [7, 1]), mask(SHAPE, rate, [8, 0])
    assert sigmas(a.mean(), keep, n) < 5, a.mean()
    flat = a.reshape(-1)
    assert sigmas((flat[:-1] & flat[1:]).mean(), keep ** 2, n) < 5          # neighbours
    assert sigmas((a.reshape(8, -1)[:-1] & a.reshape(8, -1)[1:]).mean(), keep ** 2, n) < 5   # rows
    for other in (b, c):   # the next draw of a SeedGenerator ([s, k] -> [s, k + 1]) and another seed
        assert sigmas((a & other).mean(), keep ** 2, n) < 5


def test_hashed_keep_is_a_function_of_the_index():
    seed = [3, 5]
    padded, batch = mask((5, 4, 9), 0.3, seed), mask((4, 4, 9), 0.3, seed)
    np.testing.assert_array_equal(padded[:4], batch)   # filler rows (clue.batching) leave the rest alone
    assert np.array_equal(mask((5, 4, 9), 0.3, seed), padded)
    assert not np.array_equal(mask((5, 4, 9), 0.3, [3, 6]), padded)
    assert mask((3, 7), 0.0, seed).all()


TENSORFLOW_REPLICAS = textwrap.dedent('''
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from clue.layers import Dropout
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    for dtype in ("float32", "bfloat16", "float16"):
        for shape in [(4, 3, 5), (2, 3, 3), (6, 7)]:   # per replica 30, 9 (a remainder of 1), 21 elements
            x = tf.cast(np.random.default_rng(0).normal(size=shape), dtype)
            one = np.asarray(tf.cast(Dropout(0.1, seed=3, dtype=dtype)(x, training=True), "float32"))
            with strategy.scope():
                layer = Dropout(0.1, seed=3, dtype=dtype)
            batch = next(iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(x))))
            out = strategy.run(lambda v: tf.cast(layer(v, training=True), "float32"), args=(batch,))
            two = np.concatenate([np.asarray(t) for t in strategy.experimental_local_results(out)])
            assert np.array_equal(one, two), (dtype, shape)
            assert 0 < (one == 0).mean() < 0.5, (dtype, shape)
    print("replicas equal one device")
''')


def test_tensorflow_replicas_draw_their_rows_of_one_mask():
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", TENSORFLOW_REPLICAS], env=env, capture_output=True, text=True)
    assert result.returncode == 0 and "replicas equal one device" in result.stdout, result.stderr[-3000:]


def test_jax_dropout_uses_the_hashed_mask():
    code = ("import numpy as np, keras\nfrom clue.layers import Dropout, hashed_keep\n"
            "layer = Dropout(0.25, seed=11)\nx = np.ones((3, 50), 'float32')\n"
            "seed = keras.ops.convert_to_numpy(layer.seed_generator.state.value)\n"
            "y = keras.ops.convert_to_numpy(layer(x, training=True))\n"
            "keep = keras.ops.convert_to_numpy(hashed_keep((3, 50), 0.25, seed))\n"
            "assert np.array_equal(y, np.where(keep, np.float32(1 / 0.75), 0)), (y, keep)\nprint('hashed')")
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0 and "hashed" in result.stdout, result.stderr[-3000:]
