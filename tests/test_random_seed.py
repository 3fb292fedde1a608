"""clue.cli.set_random_seed: on JAX and PyTorch, the same draws as keras.utils.set_random_seed (Keras's
global generator, NumPy, Python) without importing TensorFlow (about 470 MB of memory there)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import IN_CI

REPO = Path(__file__).resolve().parents[1]
DRAWS = r'''
import json, random, sys
import keras, numpy as np
from clue.cli import set_random_seed

result = {}
for name, seed_all in (("clue", set_random_seed), ("keras", keras.utils.set_random_seed)):
    seed_all(7)
    result[name] = [keras.ops.convert_to_numpy(keras.random.uniform((3,))).tolist(), float(np.random.rand()),
                    random.random()]
    if name == "clue":
        result["tensorflow imported"] = "tensorflow" in sys.modules
print(json.dumps(result))
'''


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_seed_equals_keras_without_tensorflow(backend):
    if importlib.util.find_spec(backend) is None:
        if backend == "jax" and IN_CI:
            pytest.fail("jax is in the test extra: CI must run the JAX backend")
        pytest.skip(f"{backend} not installed")
    env = dict(os.environ, KERAS_BACKEND=backend, CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", DRAWS], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["tensorflow imported"] is False
    assert result["clue"] == result["keras"]
