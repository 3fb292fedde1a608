"""--eval-every: dev scored within epochs as well as at their ends, the best step's weights kept, and a run
interrupted mid-epoch resumed from its last epoch backup to the uninterrupted run's files. On real TNEWS
text (``small_clue``: 56 records per split, batch 8: 7 batches per epoch), the tiny preset."""

import json
import shutil
import sys
from pathlib import Path

import pytest

import small_clue
from clue import cli, interrupt, training

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tasks"))
import tnews  # noqa: E402  (the task script, run in-process)

# 2 epochs of 7 batches, dev every 3 batches: steps 3, 6, 7 (epoch 1's end), 9, 12, 14 (epoch 2's end).
# With this seed and rate the best is found mid-epoch in epoch 2 (step 12), after epoch 1's backup.
FLAGS = ["--model", "tiny", "--batch-size", "8", "--maxlen", "32", "--epochs", "2",
         "--eval-every", "3", "--optimizer", "adamw", "--lr", "1e-3", "--seed", "1", "--verbose", "0"]
OUTPUTS = ("results/dev/tnews_dev.json", "results/dev/tnews_dev.scores.npz", "results/tnews11_predict.json",
           "results/tnews11_predict.scores.npz")


def state_of(out):
    return json.loads((out / "logs" / "tnews.state.json").read_text())


@pytest.fixture(scope="module")
def data(tmp_path_factory, clue_data_dir):
    return small_clue.build(clue_data_dir, tmp_path_factory.mktemp("data"), size=56)


@pytest.fixture(scope="module")
def whole(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("whole")
    tnews.main(["--data-dir", str(data), *FLAGS, "--output-dir", str(out)])
    return out


def test_dev_is_scored_every_n_steps_and_at_each_epoch_end(whole, data):
    state = state_of(whole)
    steps = [step for step, _ in state["evaluations"]]
    assert steps == [3, 6, 7, 9, 12, 14] and state["steps_per_epoch"] == 7
    scores = dict(state["evaluations"])
    assert state["history"] == [scores[7], scores[14]]   # the epoch ends, scored once each
    assert state["best"] == max(scores.values())
    first_best = next(step for step, score in state["evaluations"] if score == state["best"])
    assert state["best_step"] == first_best and state["best_epoch"] == (first_best - 1) // 7 + 1
    assert state["flags"]["eval_every"] == 3
    # the saved best weights, scored again, give the recorded best score
    rescored = tnews.main(["--data-dir", str(data), *FLAGS, "--output-dir", str(whole), "--mode", "eval"])
    assert rescored == state["best"]


class StopAtStep(training.StopOnSignal):
    """Interrupted (as by Ctrl-C) after training batch ``step`` of the run."""

    step = None

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch * self.params["steps"] + batch + 1 == self.step:
            raise interrupt.Interrupted(self.epoch + 1)


def test_a_run_interrupted_mid_epoch_resumes_to_the_uninterrupted_runs_files(whole, data, tmp_path, monkeypatch):
    flags = ["--data-dir", str(data), *FLAGS, "--output-dir", str(tmp_path)]
    monkeypatch.setattr(training, "StopOnSignal", StopAtStep)
    StopAtStep.step = 13   # epoch 2, after its evaluations at steps 9 and 12
    with pytest.raises(interrupt.Interrupted):
        tnews.main(flags)
    monkeypatch.undo()
    cut = state_of(tmp_path)
    assert cut["best_step"] == 12 and cut["epochs_done"] == 1, "the best is no longer found after the backup"

    # the resume starts from epoch 1's backup, and from the best as it was then: score and weights agree
    start = {}
    begin = training.BestOnDev.on_train_begin

    def seen_at_start(self, logs=None):
        begin(self, logs)
        start.update(best=self.best, step=self.best_step, evaluations=list(self.evaluations))
        shutil.copytree(tmp_path / "weights", tmp_path / "start" / "weights", ignore=shutil.ignore_patterns("*_backup"))

    monkeypatch.setattr(training.BestOnDev, "on_train_begin", seen_at_start)
    assert tnews.main([*flags, "--resume"]) == state_of(whole)["best"]
    monkeypatch.undo()
    assert start["step"] <= 7 and [s for s, _ in start["evaluations"]] == [3, 6, 7]
    assert tnews.main([*flags[:-1], str(tmp_path / "start"), "--mode", "eval"]) == start["best"] < cut["best"]
    for name in OUTPUTS:
        assert (tmp_path / name).read_bytes() == (whole / name).read_bytes(), name
    resumed = state_of(tmp_path)
    assert resumed["evaluations"] == state_of(whole)["evaluations"]
    assert resumed["best_step"] == state_of(whole)["best_step"]


def test_eval_every_is_checked_and_a_resume_with_another_is_refused(tmp_path, capsys):
    _, args = cli.parse_args("tnews", ["--eval-every", "50"])
    assert args.eval_every == 50 and "eval_every" in training.RESUME_FLAGS
    with pytest.raises(SystemExit):
        cli.parse_args("tnews", ["--eval-every", "0"])
    assert "--eval-every must be at least 1" in capsys.readouterr().err
    state = tmp_path / "tnews.state.json"
    state.write_text(json.dumps({"flags": {"eval_every": 50}}))
    with pytest.raises(ValueError, match="--eval-every 50 -> 100"):
        training.check_resume_flags(state, {"eval_every": 100})
