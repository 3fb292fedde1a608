"""The same encoder code on TensorFlow, JAX and PyTorch: same weights and inputs, same outputs (<= 1e-5).

KERAS_BACKEND must be set before keras is imported, so each other backend runs in a subprocess
(tests/backend_outputs.py) that loads the very files the TensorFlow side loads: the Google TF checkpoints
of each family and a Keras .weights.h5.
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
from conftest import IN_CI
from clue.models import build_transformer_model

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    """One job per family (TF checkpoint; with MLM where the family has its transform) plus a .weights.h5."""
    root = tmp_path_factory.mktemp("backends")
    token_ids, segment_ids = cf.random_batch(cf.TINY["vocab_size"], [14, 8, 3], seed=4)
    inputs = root / "inputs.npz"
    np.savez(inputs, token_ids=token_ids, segment_ids=segment_ids)
    jobs = []
    for family in cf.FAMILIES:
        config_path, checkpoint, _ = cf.make_checkpoint(root / family, family, "tiny", seed=9)
        jobs.append(dict(config=str(config_path), checkpoint=str(checkpoint), family=family,
                         with_mlm=family != "roformer_v2", inputs=str(inputs)))
    weights = root / "roformer_v2.weights.h5"
    build_transformer_model(config=cf.TINY, model="roformer_v2", with_mlm=True, seed=3).save_weights(weights)
    (root / "config.json").write_text(json.dumps(cf.TINY))
    jobs.append(dict(config=str(root / "config.json"), checkpoint=str(weights), family="roformer_v2",
                     with_mlm=True, inputs=str(inputs)))
    return jobs


def run_backend(backend, jobs, folder):
    """Outputs of every job under ``backend``, each run in a fresh process."""
    folder.mkdir(exist_ok=True)
    jobs = [dict(job, output=str(folder / f"{backend}_{n}.npz")) for n, job in enumerate(jobs)]
    (folder / f"{backend}.json").write_text(json.dumps(jobs))
    env = dict(os.environ, KERAS_BACKEND=backend, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(HERE / "backend_outputs.py"), str(folder / f"{backend}.json")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return [dict(np.load(job["output"])) for job in jobs]


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_backends_agree_with_tensorflow(jobs, tmp_path, backend):
    if importlib.util.find_spec(backend) is None:
        if backend == "jax" and IN_CI:
            pytest.fail("jax is in the test extra: CI must run the JAX backend")
        pytest.skip(f"{backend} not installed")
    assert keras.backend.backend() == "tensorflow"
    theirs = run_backend(backend, jobs, tmp_path)
    data = np.load(jobs[0]["inputs"])
    inputs = [data["token_ids"], data["segment_ids"]]
    keep = data["token_ids"] != 0
    for job, other in zip(jobs, theirs):
        assert str(other["backend"]) == backend
        model = build_transformer_model(job["config"], job["checkpoint"], model=job["family"],
                                        with_mlm=job["with_mlm"])
        ours = cf.probe(model)(inputs)
        assert set(ours) == ({"hidden", "logits", "probs"} if job["with_mlm"] else {"hidden"})
        diffs = {name: float(np.abs(np.asarray(ours[name]) - other[name])[keep].max()) for name in ours}
        print(f"{backend} vs tensorflow, {job['family']} from {Path(job['checkpoint']).name}: "
              f"max abs diffs {diffs}")
        assert max(diffs.values()) <= 1e-5, diffs
        fused_vs_explicit = float(np.abs(other["hidden"] - other["hidden_explicit"])[keep].max())
        print(f"{backend} fused vs explicit attention, hidden max abs diff {fused_vs_explicit:.1e}")
        assert fused_vs_explicit <= 1e-5
    assert np.isfinite(theirs[0]["loss"]).all()
