"""The PyTorch-only paths (fused gelu and layer norm, AdamW's and AdaFactor's in-place updates) equal the
code the other backends run: forward values and gradients to round-off, the optimizers' weights bit for
bit. PyTorch is not in the test extra (its default wheel is a multi-GB CUDA build), so this runs where it is
installed."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def differences():
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch not installed")
    env = dict(os.environ, KERAS_BACKEND="torch", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, str(HERE / "torch_paths.py")], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-5000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(result)
    return result


def test_fused_gelu_equals_written_out(differences):
    assert differences["gelu"] <= 2e-6   # |x| up to ~12, so a few float32 ulps


@pytest.mark.parametrize("zero_mean", [True, False])
def test_fused_layer_norm_equals_written_out(differences, zero_mean):
    assert differences[f"layer_norm zero_mean={zero_mean}"] <= 2e-6


def test_adamw_in_place_equals_keras_update(differences):
    assert differences["adamw in place vs Keras's update"] == 0


def test_dropout_keeps_and_scales_the_same_mask_both_ways(differences):
    assert differences["dropout output vs x / keep"] == 0
    assert differences["dropout gradient vs mask / keep"] <= 1e-7   # 1 / 0.9 as a float32 against a double
    assert differences["dropout kept fraction, sigmas"] < 5


@pytest.mark.parametrize("accum", [1, 2])
def test_adafactor_in_place_equals_keras_ops(differences, accum):
    assert differences[f"adafactor {accum} in place vs keras.ops"] == 0


def test_task_script_imports_keras_on_torch():
    """A task script's `from clue import heads` defers that module; Keras's import then imports torch,
    whose import walks sys.modules: the deferred modules must not load in the middle of it."""
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch not installed")
    script = ("from clue import heads\nfrom clue.cli import import_keras\nimport_keras(0)\n"
              "print(heads.classifier.__name__)")
    env = dict(os.environ, KERAS_BACKEND="torch", CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(HERE.parent))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "classifier"
