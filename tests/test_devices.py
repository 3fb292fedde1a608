"""--devices (clue.devices): batches padded to split evenly, with zero-weight filler that changes neither the
loss nor the predictions; and tnews, cmrc2018 and c3 trained on 2 (virtual CPU) devices against 1, on
TensorFlow and JAX: the same losses, dev scores, weights and leaderboard files."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import h5py
import keras
import numpy as np
import pytest

from clue import batching, devices

REPO = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-5


def collate(examples, length):   # (x, y) of (token ids, label) examples
    return batching.sequence_padding([e[0] for e in examples], length), np.array([e[1] for e in examples])


EXAMPLES = [([1, 2, 3], 0), ([4, 5], 1), ([6], 2), ([7, 8, 9, 10], 0), ([11, 12], 1)]


def test_a_short_batch_is_padded_with_filler_of_weight_zero():
    batches = batching.Batches(EXAMPLES, collate, batch_size=3, multiple=1, replicas=2)
    (x, y, weight), (x2, y2, weight2) = batches[0], batches[1]
    assert x.shape == (4, 3) and list(y) == [0, 1, 2, 0]            # 3 examples and a copy of the first
    np.testing.assert_allclose(weight, [4 / 3] * 3 + [0])
    assert x2.shape == (2, 4) and list(weight2) == [1, 1]          # 2 rows split evenly: no filler
    # Keras's mean loss (weighted sum over the rows) is the mean over the real examples
    losses = np.array([0.5, 1.0, 2.0, 9.0])
    assert np.sum(losses * weight) / len(losses) == pytest.approx(np.mean(losses[:3]))
    assert [batches.real_rows(i) for i in range(len(batches))] == [3, 2]


def test_one_device_keeps_plain_batches():
    x, y = batching.Batches(EXAMPLES, collate, batch_size=3, multiple=1, replicas=1)[0]
    assert x.shape == (3, 3) and list(y) == [0, 1, 2]


class RowSums:
    """A stand-in model: each row's sum of token ids."""

    def predict_on_batch(self, x):
        return x.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("replicas", [1, 2, 4])
def test_predict_drops_the_filler_rows(replicas):
    batches = batching.Batches(EXAMPLES, collate, batch_size=3, multiple=1, replicas=replicas)
    out = batching.predict(RowSums(), batches)
    np.testing.assert_array_equal(out[:, 0], [sum(e[0]) for e in EXAMPLES])


@pytest.mark.parametrize("text", ["0", "-1", "two", ""])
def test_bad_devices_flag_is_one_line(text):
    result = subprocess.run([sys.executable, "tasks/tnews.py", "--devices", text], cwd=REPO, capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2
    assert "--devices: takes a whole number of at least 1 or 'all'" in result.stderr.splitlines()[-1]


def test_pytorch_is_refused_in_one_line(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    args = SimpleNamespace(devices=2, optimizer="adafactor", grad_accum=1)
    with pytest.raises(devices.DeviceError, match="KERAS_BACKEND=jax or tensorflow"):
        devices.prepare(args)


def test_keras_accumulation_under_a_tensorflow_strategy_is_refused(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    with pytest.raises(devices.DeviceError, match="keras-team/keras#20582"):
        devices.prepare(SimpleNamespace(devices=2, optimizer="adamw", grad_accum=2))
    devices.prepare(SimpleNamespace(devices=2, optimizer="adafactor", grad_accum=2))   # ours: fine
    devices.prepare(SimpleNamespace(devices=1, optimizer="adamw", grad_accum=2))       # one device: fine


# --- 2 devices against 1: tiny encoder (1 layer) without dropout (TensorFlow's replicas draw masks of their own), real data

JOBS = {   # each with a short last batch (padded on 2 devices); c3 accumulates over 2 epochs
    "tnews": ["--limit", "11", "--batch-size", "4", "--maxlen", "16", "--epochs", "1"],
    "cmrc2018": ["--limit", "1", "--batch-size", "5", "--maxlen", "64", "--epochs", "1"],   # accumulates (2)
    "c3": ["--limit", "5", "--batch-size", "2", "--grad-accum", "2", "--maxlen", "32", "--epochs", "2"],
}
BACKENDS = ("tensorflow", "jax")


@pytest.fixture(scope="module")
def device_runs(tmp_path_factory, clue_data_dir):
    """{backend: (folder, output)}: every job run with --devices 2 and 1, one process per backend, both at once."""
    root = tmp_path_factory.mktemp("devices")
    preset = json.loads((REPO / "configs" / "tiny.json").read_text())
    preset["config"].update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_hidden_layers=1)
    (root / "tiny0.json").write_text(json.dumps(preset))
    running = {}
    for backend in BACKENDS:
        jobs = [{"script": str(REPO / "tasks" / f"{task}.py"), "output": str(root / backend / task),
                 "flags": ["--model", str(root / "tiny0.json"), "--data-dir", str(clue_data_dir), "--verbose", "0",
                           *flags]} for task, flags in JOBS.items()]
        (root / f"{backend}.json").write_text(json.dumps(jobs))
        env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"}
        running[backend] = subprocess.Popen([sys.executable, str(REPO / "tests" / "device_runs.py"),
                                             str(root / f"{backend}.json")], env=env, text=True,
                                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    done = {}
    for backend, process in running.items():
        output = process.communicate()[0]
        assert process.returncode == 0, output[-3000:]
        done[backend] = (root / backend, output)
    return done


def read_csv(path):
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def weights(path):
    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: found.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
    return found


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("task", list(JOBS))
def test_two_devices_train_and_predict_as_one(device_runs, backend, task):
    root, output = device_runs[backend]
    assert "devices: data parallel over 2" in output
    two, one = root / task / "d2", root / task / "d1"
    log2, log1 = read_csv(two / "logs" / f"{task}.csv"), read_csv(one / "logs" / f"{task}.csv")
    assert len(log1) == len(log2) == int(JOBS[task][JOBS[task].index("--epochs") + 1])
    for row2, row1 in zip(log2, log1):   # per epoch: training loss and dev score
        assert row2.keys() == row1.keys()
        for key in row1:
            assert abs(row2[key] - row1[key]) <= TOLERANCE, (key, row2[key], row1[key])
    history = [json.loads((d / "logs" / f"{task}.state.json").read_text())["history"] for d in (two, one)]
    np.testing.assert_allclose(*history, atol=TOLERANCE)
    w2, w1 = weights(two / "weights" / f"{task}.weights.h5"), weights(one / "weights" / f"{task}.weights.h5")
    assert w2.keys() == w1.keys() and w1
    assert max(float(np.max(np.abs(w2[k] - w1[k]))) for k in w1) <= TOLERANCE
    files = sorted(p.relative_to(one / "results") for p in (one / "results").rglob("*.json"))
    assert files and files == sorted(p.relative_to(two / "results") for p in (two / "results").rglob("*.json"))
    for name in files:   # leaderboard files (and dev predictions in their format) byte for byte
        assert (two / "results" / name).read_bytes() == (one / "results" / name).read_bytes(), name
