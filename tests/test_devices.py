"""--devices (clue.devices): batches padded to split evenly, with zero-weight filler that changes neither the
loss nor the predictions; and tnews (also with --rdrop and --fgm), cmrc2018 and c3 trained on 2 (virtual CPU)
devices against 1, dropout on, on TensorFlow and JAX: the same losses, dev scores, weights and leaderboard
files; the same jobs over 2 JAX processes against 1; and a run killed on 2 devices and resumed on 1 ends as the
run on 1 device alone."""

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from clue import batching, devices
from killed_runs import backup_epoch, h5_arrays, kill_once_backed_up

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


@pytest.mark.parametrize("flags, env, message", [
    (["--processes", "2", "--coordinator", "localhost:1"], {}, "--processes 2 needs --process-id 0 to 1"),
    (["--processes", "2", "--process-id", "2", "--coordinator", "localhost:1"], {}, "got 2"),
    (["--processes", "2", "--process-id", "0"], {}, "needs --coordinator HOST:PORT"),
    ([], {"KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": "1"},
     "needs --coordinator HOST:PORT"),
    (["--processes", "2", "--process-id", "0", "--coordinator", "localhost:1"], {"KERAS_BACKEND": "tensorflow"},
     "--processes above 1 runs on JAX"),
])
def test_bad_process_flags_are_one_line_before_training(tmp_path, flags, env, message):
    environment = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO), **env}
    result = subprocess.run([sys.executable, "tasks/tnews.py", "--output-dir", str(tmp_path), *flags], cwd=REPO,
                            capture_output=True, text=True, env=environment)
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.splitlines()[-1].startswith("error: ") and message in result.stderr.splitlines()[-1]
    assert not any(tmp_path.iterdir())   # refused before anything was written


@pytest.mark.parametrize("argv, message", [
    (["tasks/tnews.py", "--processes", "0"], "--processes must be at least 1, got 0"),
    (["tasks/tnews.py", "--process-id", "-1"], "--process-id must be at least 0, got -1"),
    (["scripts/run_clue.py", "--model", "tiny", "--processes", "2"], "unrecognized arguments"),
])
def test_process_flags_out_of_range_are_flag_errors(argv, message):
    result = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2 and message in result.stderr.splitlines()[-1]


def test_clue_run_refuses_several_processes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "KERAS_DISTRIBUTION_NUM_PROCESSES": "2"}
    result = subprocess.run([sys.executable, "scripts/run_clue.py", "--model", "tiny", "--output-dir", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "clue-run runs on one machine" in result.stderr.splitlines()[-1]


# --- 2 devices against 1: tiny encoder (1 layer, dropout on), real data

JOBS = {   # name: (task, flags), each with a short last batch (padded on 2 devices); c3 accumulates over 2 epochs
    "tnews": ("tnews", ["--limit", "11", "--batch-size", "4", "--maxlen", "16", "--epochs", "1"]),
    "cmrc2018": ("cmrc2018", ["--limit", "1", "--batch-size", "5", "--maxlen", "64", "--epochs", "1"]),   # accum 2
    "c3": ("c3", ["--limit", "5", "--batch-size", "2", "--grad-accum", "2", "--maxlen", "32", "--epochs", "2"]),
    "tnews-rdrop": ("tnews", ["--limit", "11", "--batch-size", "4", "--maxlen", "16", "--epochs", "1",
                              "--rdrop", "1"]),
    "tnews-fgm": ("tnews", ["--limit", "11", "--batch-size", "4", "--maxlen", "16", "--epochs", "1", "--fgm", "1"]),
}
BACKENDS = ("tensorflow", "jax")


def tiny_preset(root):
    preset = json.loads((REPO / "configs" / "tiny.json").read_text())
    preset["config"].update(num_hidden_layers=1)   # dropout stays on: each device draws its rows of one mask
    (root / "tiny1.json").write_text(json.dumps(preset))
    return root / "tiny1.json"


def task_flags(root, clue_data_dir, flags):
    return ["--model", str(tiny_preset(root)), "--data-dir", str(clue_data_dir), "--verbose", "0", *flags]


@pytest.fixture(scope="module")
def device_runs(tmp_path_factory, clue_data_dir):
    """{backend: (folder, output)}: every job run with --devices 2 and 1, one process per backend, both at once."""
    root = tmp_path_factory.mktemp("devices")
    running = {}
    for backend in BACKENDS:
        jobs = [{"script": str(REPO / "tasks" / f"{task}.py"), "output": str(root / backend / name),
                 "flags": task_flags(root, clue_data_dir, flags)} for name, (task, flags) in JOBS.items()]
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


def assert_same_run(two, one, task, epochs):
    """Two output folders of ``task``: per-epoch logs, state history and best weights <= TOLERANCE apart,
    every results file byte for byte."""
    log2, log1 = read_csv(two / "logs" / f"{task}.csv"), read_csv(one / "logs" / f"{task}.csv")
    assert len(log1) == len(log2) == epochs
    for row2, row1 in zip(log2, log1):   # per epoch: training loss and dev score
        assert row2.keys() == row1.keys()
        for key in row1:
            assert abs(row2[key] - row1[key]) <= TOLERANCE, (key, row2[key], row1[key])
    history = [json.loads((d / "logs" / f"{task}.state.json").read_text())["history"] for d in (two, one)]
    np.testing.assert_allclose(*history, atol=TOLERANCE)
    w2, w1 = h5_arrays(two / "weights" / f"{task}.weights.h5"), h5_arrays(one / "weights" / f"{task}.weights.h5")
    assert w2.keys() == w1.keys() and w1
    assert max(float(np.max(np.abs(w2[k] - w1[k]))) for k in w1) <= TOLERANCE
    files = sorted(p.relative_to(one / "results") for p in (one / "results").rglob("*.json"))
    assert files and files == sorted(p.relative_to(two / "results") for p in (two / "results").rglob("*.json"))
    for name in files:   # leaderboard files (and dev predictions in their format) byte for byte
        assert (two / "results" / name).read_bytes() == (one / "results" / name).read_bytes(), name


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(JOBS))
def test_two_devices_train_and_predict_as_one(device_runs, backend, name):
    root, output = device_runs[backend]
    assert "devices: data parallel over 2" in output
    task, flags = JOBS[name]
    assert_same_run(root / name / "d2", root / name / "d1", task, int(flags[flags.index("--epochs") + 1]))


# --- 2 JAX processes on localhost (one CPU device each, Gloo collectives) against 1 process

def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def process_runs(device_runs, tmp_path_factory, clue_data_dir):
    """The jobs of ``device_runs`` run by 2 JAX processes (--processes 2) into p2/ beside its d1/; the output
    of each process."""
    root = tmp_path_factory.mktemp("processes")
    jobs = [{"script": str(REPO / "tasks" / f"{task}.py"), "output": str(device_runs["jax"][0] / name),
             "flags": task_flags(root, clue_data_dir, flags)} for name, (task, flags) in JOBS.items()]
    (root / "jobs.json").write_text(json.dumps(jobs))
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"}
    coordinator = f"localhost:{free_port()}"
    running = [subprocess.Popen([sys.executable, str(REPO / "tests" / "device_runs.py"), str(root / "jobs.json"),
                                 "--processes", "2", "--process-id", str(i), "--coordinator", coordinator],
                                env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
               for i in range(2)]
    outputs = []
    for process in running:
        try:
            outputs.append(process.communicate(timeout=900)[0])
        except subprocess.TimeoutExpired:
            for p in running:
                p.kill()
            raise
        assert process.returncode == 0, outputs[-1][-3000:]
    return outputs


@pytest.mark.parametrize("name", list(JOBS))
def test_two_jax_processes_train_and_predict_as_one(device_runs, process_runs, name):
    assert "devices: data parallel over 2 CPU devices (JAX) in 2 processes; this is process 0" in process_runs[0]
    assert "this is process 1" in process_runs[1]
    task, flags = JOBS[name]
    run = device_runs["jax"][0] / name
    assert_same_run(run / "p2", run / "d1", task, int(flags[flags.index("--epochs") + 1]))
    # process 1 wrote its own copy, inside process 0's folder but apart from the run's files
    assert (run / "p2" / "process-1" / "weights" / f"{task}.weights.h5").is_file()
    assert not any("process-1" in str(p) for p in (run / "p2" / "results").rglob("*"))


# --- a run killed on 2 devices and resumed on 1 ends as the run on 1 device alone

@pytest.mark.parametrize("backend", BACKENDS)
def test_a_run_killed_on_two_devices_resumes_on_one(tmp_path, clue_data_dir, backend):
    # 2 x 24 AdaFactor steps: the largest difference (about 5e-6 here) is in the attention key biases, whose
    # gradient is round-off only (softmax ignores them) and which AdaFactor scales up; the rest <= 1e-7
    flags = task_flags(tmp_path, clue_data_dir, ["--limit", "96", "--batch-size", "4", "--maxlen", "16",
                                                 "--epochs", "2"])
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    script = [sys.executable, str(REPO / "tasks" / "tnews.py"), *flags]
    killed, alone = tmp_path / "killed", tmp_path / "alone"
    reference = subprocess.Popen([*script, "--devices", "1", "--output-dir", str(alone)], env=env, text=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc = subprocess.Popen([*script, "--devices", "2", "--output-dir", str(killed)], env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kill_once_backed_up(proc, killed, "tnews")
    assert backup_epoch(killed, "tnews") == 1
    resumed = subprocess.run([*script, "--devices", "1", "--output-dir", str(killed), "--resume"], env=env,
                             text=True, capture_output=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert reference.wait() == 0, reference.stderr.read()[-3000:]
    assert_same_run(killed, alone, "tnews", epochs=2)
