"""The shared training loop: resume after a real kill, the learning-rate schedule, pooling and the
best-on-dev bookkeeping."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from clue import demo, optimizers, training
from clue.heads import Pooling

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tasks"))
import afqmc  # noqa: E402  (the task script, run in-process)
from killed_runs import backup_epoch, h5_arrays, kill_once_backed_up  # noqa: E402

# Small and quick, but with dropout, AdamW's warmup/decay schedule and shuffling all in play; the backups
# kept (--keep-backup) to be compared, and cut runs resumed with more epochs.
FLAGS = ["--model", "tiny", "--keep-backup", "--epochs", "3", "--batch-size", "16", "--maxlen", "32",
         "--optimizer", "adamw", "--lr", "1e-3", "--verbose", "0", "--seed", "7"]


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    data = tmp_path / "data"
    demo.make_afqmc(data / "afqmc", seed=1, sizes={"train": 640, "dev": 96, "test": 40})
    common = ["--data-dir", str(data), *FLAGS]

    # a real process, killed (SIGKILL) once the backup of epoch 1 is on disk
    killed = tmp_path / "killed"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen([sys.executable, str(REPO / "tasks" / "afqmc.py"), *common,
                             "--output-dir", str(killed)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    kill_once_backed_up(proc, killed, "afqmc")
    stopped_at = backup_epoch(killed, "afqmc")
    assert 1 <= stopped_at < 3, stopped_at
    assert not (killed / "results" / "afqmc_predict.json").exists()

    resumed_score = afqmc.main([*common, "--output-dir", str(killed), "--resume"])
    whole = tmp_path / "whole"
    whole_score = afqmc.main([*common, "--output-dir", str(whole)])

    # final model + optimizer state (the last backup), the best weights and the predictions all agree
    for name in ("afqmc_backup/latest.weights.h5", "afqmc.weights.h5"):
        a, b = h5_arrays(whole / "weights" / name), h5_arrays(killed / "weights" / name)
        assert a.keys() == b.keys()
        different = [k for k in a if not np.array_equal(a[k], b[k])]
        assert not different, f"{name}: {len(different)} arrays differ, e.g. {different[:3]}"
    assert any("optimizer" in k for k in h5_arrays(whole / "weights" / "afqmc_backup/latest.weights.h5"))
    assert resumed_score == whole_score
    state = [json.loads((d / "logs" / "afqmc.state.json").read_text()) for d in (whole, killed)]
    assert state[0]["history"] == state[1]["history"] and len(state[0]["history"]) == 3
    assert (whole / "results" / "afqmc_predict.json").read_text() == \
        (killed / "results" / "afqmc_predict.json").read_text()
    # the resumed CSV log holds every epoch once
    epochs = [line.split(",")[0] for line in (killed / "logs" / "afqmc.csv").read_text().splitlines()[1:]]
    assert sorted(set(epochs)) == ["0", "1", "2"]


def test_resume_survives_a_half_written_backup(tmp_path):
    """A kill while Keras writes the backup leaves a truncated weights file: resume falls back to the
    previous epoch's copy (or, for the first backup, to scratch) and still ends like an uninterrupted run."""
    data = tmp_path / "data"
    demo.make_afqmc(data / "afqmc", seed=2, sizes={"train": 320, "dev": 64, "test": 16})
    # a constant learning rate, so a run cut after N epochs and resumed to 3 is the 3-epoch run
    flags = ["--data-dir", str(data), *FLAGS[:FLAGS.index("--optimizer")], "--optimizer", "adafactor",
             "--lr", "1e-3", "--verbose", "0", "--seed", "7"]
    flags[flags.index("--epochs") + 1] = "3"
    whole = tmp_path / "whole"
    afqmc.main([*flags, "--output-dir", str(whole)])
    expected = h5_arrays(whole / "weights" / "afqmc_backup" / "latest.weights.h5")

    for done in (1, 2):
        cut = tmp_path / f"cut{done}"
        afqmc.main([*flags, "--epochs", str(done), "--output-dir", str(cut)])
        backup = cut / "weights" / "afqmc_backup"
        latest = backup / "latest.weights.h5"
        latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 3])   # killed mid-write
        if done == 1:   # the first backup: Keras had not written its metadata yet
            (backup / "training_metadata.json").unlink()
        else:
            assert (backup / "latest.weights.h5.bkp").is_file()
        afqmc.main([*flags, "--output-dir", str(cut), "--resume"])
        got = h5_arrays(latest)
        assert got.keys() == expected.keys()
        assert all(np.array_equal(got[k], expected[k]) for k in expected), f"cut after epoch {done}"
        assert (cut / "results" / "afqmc_predict.json").read_text() == \
            (whole / "results" / "afqmc_predict.json").read_text()


def test_warmup_linear_schedule():
    schedule = training.WarmupLinear(1.0, total_steps=10, warmup_steps=2)
    rates = [float(schedule(step)) for step in range(11)]
    assert rates[:3] == pytest.approx([0.5, 1.0, 1.0])
    assert rates[2:] == pytest.approx([(10 - s) / 8 for s in range(2, 11)])
    assert training.WarmupLinear.from_config(schedule.get_config()).total_steps == 10


def test_pooling_ignores_padding():
    hidden = np.array([[[1.0, -5.0], [3.0, 2.0], [100.0, 100.0]]], "float32")   # last position is padding
    token_ids = np.array([[2, 7, 0]])
    assert np.allclose(Pooling("cls")(hidden, token_ids), [[1.0, -5.0]])
    assert np.allclose(Pooling("avg")(hidden, token_ids), [[2.0, -1.5]])
    assert np.allclose(Pooling("max")(hidden, token_ids), [[3.0, 2.0]])
    with pytest.raises(ValueError, match="pooling"):
        Pooling("mean")


class Args:
    def __init__(self, **kw):
        self.__dict__.update(dict(grad_accum=1, lr=1e-3, warmup=0.1, weight_decay=0.01), **kw)


def test_optimizers():
    adafactor = training.make_optimizer(Args(optimizer="adafactor"), 100)
    assert isinstance(adafactor, optimizers.AdaFactor) and adafactor.grad_accum_steps == 1
    assert float(adafactor.learning_rate) == pytest.approx(1e-3) and adafactor.beta1 == 0.9
    accumulating = training.make_optimizer(Args(optimizer="adafactor", grad_accum=2), 100)
    # bert4keras's accumulation, not Keras's
    assert accumulating.grad_accum_steps == 2 and not accumulating.gradient_accumulation_steps
    adamw = training.make_optimizer(Args(optimizer="adamw", grad_accum=4), 100)
    assert isinstance(adamw, optimizers.AdamW) and adamw.gradient_accumulation_steps == 4
    assert adamw._learning_rate.warmup_steps == 10


def test_best_on_dev_keeps_the_best_and_survives_resume(tmp_path):
    scores = iter([0.5, 0.7, 0.6])
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    weights, state = tmp_path / "t.weights.h5", tmp_path / "t.state.json"
    best = training.BestOnDev(lambda m: next(scores), "accuracy", weights, state)
    best.set_model(model)
    best.set_params({"epochs": 3})
    best.on_train_begin()
    for epoch in range(2):
        best.on_epoch_end(epoch, {})
    kept = h5_arrays(weights)
    # a resumed run reads the best so far and keeps it when epoch 3 is worse
    again = training.BestOnDev(lambda m: next(scores), "accuracy", weights, state, resume=True)
    again.set_model(model)
    again.set_params({"epochs": 3})
    again.on_train_begin()
    model.layers[0].kernel.assign(np.ones((2, 1)))
    logs = {}
    again.on_epoch_end(2, logs)
    saved = json.loads(state.read_text())
    assert saved["best"] == 0.7 and saved["best_epoch"] == 2 and saved["history"] == [0.5, 0.7, 0.6]
    assert logs == {"val_accuracy": 0.6}
    assert all(np.array_equal(kept[k], v) for k, v in h5_arrays(weights).items())
    assert not list(tmp_path.glob(".*tmp*"))   # no temporary files left behind
