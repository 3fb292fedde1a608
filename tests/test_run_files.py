"""What a run leaves for later use: the best weights (the model's alone) with the JSON that rebuilds the
model beside them, and eval mode scoring them as the run did (tiny model, real data, --limit)."""

import contextlib
import io
import json
import sys
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from clue import predictions

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tasks"))
import afqmc  # noqa: E402  (the task script, run in-process)

FLAGS = ["--model", "tiny", "--epochs", "1", "--limit", "48", "--batch-size", "16", "--maxlen", "32",
         "--verbose", "0"]


def h5_datasets(path):
    names = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def run_quietly(main, argv):
    """(what ``main(argv)`` returned, what it printed)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = main(argv)
    return result, printed.getvalue()


@pytest.fixture(scope="module")
def afqmc_run(tmp_path_factory, clue_data_dir):
    """(argv, output folder, printed dev score) of one tiny afqmc run on the real data."""
    out = tmp_path_factory.mktemp("afqmc")
    argv = [*FLAGS, "--data-dir", str(clue_data_dir), "--output-dir", str(out)]
    score, _ = run_quietly(afqmc.main, argv)
    return argv, out, score


def test_best_weights_hold_the_model_alone_with_its_description(afqmc_run):
    _, out, _ = afqmc_run
    names = h5_datasets(out / "weights" / "afqmc.weights.h5")
    assert names and not [n for n in names if not n.startswith("layers/")], "optimizer variables in the best weights"
    description = json.loads((out / "weights" / "afqmc.model.json").read_text(encoding="utf-8"))
    assert description["task"] == "afqmc" and description["weights"] == "afqmc.weights.h5"
    assert description["labels"] == ["0", "1"] and description["maxlen"] == 32
    assert description["framing"] == {"pooling": "cls", "second_segment": 0}
    assert description["model"]["preset"] == "tiny" and description["model"]["family"] == "bert"
    assert description["model"]["config"]["num_hidden_layers"] == 2 and description["vocab"] == "builtin"
    assert description["versions"]["keras"] == keras.__version__


def test_eval_mode_scores_the_model_only_weights_as_the_run_did(afqmc_run):
    argv, out, score = afqmc_run
    dev = out / "results" / "dev" / "afqmc_dev.json"
    trained = predictions.load(predictions.scores_path(dev)).probs
    evaluated, printed = run_quietly(afqmc.main, [*argv, "--mode", "eval"])
    assert evaluated == score and f"dev accuracy {score:.2%}" in printed
    assert np.array_equal(predictions.load(predictions.scores_path(dev)).probs, trained)


def test_a_finished_run_deletes_its_backup_and_resuming_it_predicts_again(afqmc_run):
    argv, out, score = afqmc_run
    assert not (out / "weights" / "afqmc_backup").exists()
    written = {p: p.read_bytes() for p in (out / "results").rglob("*.json")}
    log = (out / "logs" / "afqmc.csv").read_text()
    for path in written:
        path.unlink()
    resumed, printed = run_quietly(afqmc.main, [*argv, "--resume"])
    assert resumed == score and "predicting again from" in printed
    assert {p: p.read_bytes() for p in written} == written
    assert (out / "logs" / "afqmc.csv").read_text() == log   # no epoch trained
