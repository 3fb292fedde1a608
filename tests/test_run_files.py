"""What a run leaves for later use: the best weights (the model's alone) with the JSON that rebuilds the
model beside them, and eval mode scoring them as the run did (tiny model, real data, --limit)."""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from tiny_runs import FLAGS, run_quietly  # (afqmc_run, the tiny afqmc run, is conftest's)

from clue import predict, predictions, registry
from clue.paths import MissingPathError

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tasks"))
import afqmc  # noqa: E402  (the task scripts, run in-process)
import tnews  # noqa: E402


def h5_datasets(path):
    names = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


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


def test_the_last_epoch_writes_no_backup_and_a_kill_after_it_resumes_as_finished(tmp_path, clue_data_dir,
                                                                                 monkeypatch):
    """The last epoch's best weights and state are all a finished run needs: its backup is not written, and
    a kill after that epoch (an earlier epoch's backup still there) resumes by predicting, not training."""
    from clue import training

    out = tmp_path / "run"
    argv = [*FLAGS, "--epochs", "2", "--data-dir", str(clue_data_dir), "--output-dir", str(out)]
    real_load = training.load_model_weights
    seen = {}

    def killed_after_fit(model, path):   # fit's first step after model.fit: the backup left as it was
        meta = out / "weights" / "afqmc_backup" / "training_metadata.json"
        seen["backup_epoch"] = json.loads(meta.read_text())["epoch"]
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "load_model_weights", killed_after_fit)
    with pytest.raises(KeyboardInterrupt):
        run_quietly(afqmc.main, argv)
    monkeypatch.setattr(training, "load_model_weights", real_load)
    assert seen["backup_epoch"] == 1   # written after epoch 1 only
    state = json.loads((out / "logs" / "afqmc.state.json").read_text())
    assert state["epochs_done"] == 2
    log = (out / "logs" / "afqmc.csv").read_text()
    resumed, printed = run_quietly(afqmc.main, [*argv, "--resume"])
    assert "predicting again from" in printed and resumed == state["best"]
    assert (out / "logs" / "afqmc.csv").read_text() == log   # no epoch trained again
    assert not (out / "weights" / "afqmc_backup").exists()
    assert (out / "results" / "dev" / "afqmc_dev.json").is_file()


def first_records(task, files, count, folder):
    """The first ``count`` records of a task's dev files (as --limit keeps them), written in the task's
    own format to ``folder``: gold for exactly the records a --limit run predicted; the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    kept, paths = count, []
    for source in files:
        target = folder / source.name
        if task == "cmrc2018":   # SQuAD: articles > paragraphs > questions
            doc = json.loads(source.read_text(encoding="utf-8"))
            for article in doc["data"]:
                for paragraph in article["paragraphs"]:
                    paragraph["qas"], kept = paragraph["qas"][:kept], max(0, kept - len(paragraph["qas"]))
            target.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        elif task == "c3":       # [[dialogue lines, questions, id], ...]
            documents = json.loads(source.read_text(encoding="utf-8"))
            for document in documents:
                document[1], kept = document[1][:kept], max(0, kept - len(document[1]))
            target.write_text(json.dumps([d for d in documents if d[1]], ensure_ascii=False), encoding="utf-8")
        else:                    # one record per line
            lines = [line for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
            target.write_text("\n".join(lines[:kept]) + "\n", encoding="utf-8")
            kept = max(0, kept - len(lines))
        paths.append(target)
    return paths


# The dev files of each task, in the order the task reads them.
DEV_FILES = {"afqmc": ["dev.json"], "cluener": ["dev.json"], "cmrc2018": ["cmrc2018_dev.json"],
             "c3": ["c3-d-dev.json", "c3-m-dev.json"]}


def evaluated(task, out, limit, clue_data_dir, folder):
    """What scripts/evaluate.py prints for a run's dev predictions against the records it predicted, after
    checking that the state file's best score is the one the run printed; (its lines, metric, best)."""
    state = json.loads((out / "logs" / f"{task}.state.json").read_text(encoding="utf-8"))
    gold = first_records(task, [clue_data_dir / task / name for name in DEV_FILES[task]], limit, folder)
    printed = subprocess.run([sys.executable, str(REPO / "scripts" / "evaluate.py"), task,
                              str(out / "results" / "dev" / f"{task}_dev.json"), *map(str, gold)],
                             capture_output=True, text=True, check=True).stdout
    assert "warning" not in printed, printed
    return printed.splitlines(), state["metric"], state["best"]


def test_evaluate_scores_afqmc_dev_predictions_to_the_printed_dev_score(afqmc_run, tmp_path, clue_data_dir):
    argv, out, score = afqmc_run
    lines, metric, best = evaluated("afqmc", out, int(argv[argv.index("--limit") + 1]), clue_data_dir, tmp_path)
    assert best == score and lines[-1] == f"{metric}: {100 * score:.4f}"


@pytest.mark.parametrize("task", ["c3", "cluener", "cmrc2018"])
def test_evaluate_scores_dev_predictions_to_the_printed_dev_score(task, tmp_path, clue_data_dir):
    limit, out = 16, tmp_path / "out"
    argv = ["--model", "tiny", "--epochs", "1", "--limit", str(limit), "--batch-size", "16", "--maxlen", "64",
            "--verbose", "0", "--data-dir", str(clue_data_dir), "--output-dir", str(out)]
    script = importlib.import_module(Path(registry.get(task).script).stem)
    _, printed = run_quietly(script.main, argv)
    lines, metric, best = evaluated(task, out, limit, clue_data_dir, tmp_path / "gold")
    assert f"best dev {metric} {best:.2%}" in printed
    assert lines[-1] == f"{metric}: {100 * best:.4f}"
    if task == "cmrc2018":   # F1 too, which the script prints beside its metric (EM)
        f1 = float(lines[-2].removeprefix("cmrc2018_f1: "))
        assert f1 > 0 and f"dev F1 {f1:.2f}%" in printed


def leaderboard_labels(path):
    return [json.loads(line)["label"] for line in path.read_text(encoding="utf-8").splitlines()]


def check_predict_api_reproduces_the_leaderboard(task_name, out, limit, data_dir):
    task = registry.get(task_name)
    (test, name), *_ = task.test_outputs(data_dir / task.name)
    records = task.read(test)[:limit]
    predictor = predict.load(out, task=task_name)
    found = predictor.predict(records, top_k=3)
    assert [f["label"] for f in found] == leaderboard_labels(out / "results" / name)
    kept = predictions.load(predictions.scores_path(out / "results" / name)).probs
    assert np.array_equal(predictor.probabilities(records), kept)   # a tiny model's labels may all be one
    assert all(f["top"][0] == [f["label"], f["probability"]] and len(f["top"]) == min(3, len(task.labels))
               for f in found)
    return predictor, records, found


def test_predict_api_reproduces_afqmc_leaderboard_labels_from_records_and_text_pairs(afqmc_run, clue_data_dir):
    argv, out, _ = afqmc_run
    predictor, records, found = check_predict_api_reproduces_the_leaderboard(
        "afqmc", out, int(argv[argv.index("--limit") + 1]), clue_data_dir)
    pairs = predictor.predict([(r["sentence1"], r["sentence2"]) for r in records])
    assert [p["label"] for p in pairs] == [f["label"] for f in found]
    assert predict.load(out).task.name == "afqmc"   # the folder's only model


def test_predict_load_names_what_is_missing(tmp_path):
    with pytest.raises(MissingPathError, match=r"weights: it holds no model \(train into it first\)"):
        predict.load(tmp_path)
    (tmp_path / "weights").mkdir()
    for name in ("afqmc", "cluener"):
        (tmp_path / "weights" / f"{name}.model.json").write_text(json.dumps({"task": name}))
    with pytest.raises(MissingPathError, match=r"it holds the models of afqmc, cluener; pick one with --task"):
        predict.load(tmp_path)
    with pytest.raises(ValueError, match=r"cluener\.model\.json: cluener is not a classification task"):
        predict.Classifier(tmp_path / "weights" / "cluener.model.json")


def test_predict_api_reproduces_tnews_leaderboard_labels_and_takes_plain_texts(tmp_path, clue_data_dir):
    out, limit, data = tmp_path / "out", 32, tmp_path / "data"
    # the shared data has no tnews test file: dev lines past the first --limit ones, unlabelled, stand in
    (data / "tnews").mkdir(parents=True)
    for name in ("train.json", "dev.json", "labels.json"):
        (data / "tnews" / name).symlink_to(clue_data_dir / "tnews" / name)
    dev = (clue_data_dir / "tnews" / "dev.json").read_text(encoding="utf-8").split("\n")[limit:2 * limit]
    (data / "tnews" / "test1.1.json").write_text("".join(
        json.dumps({"id": i, **{k: v for k, v in json.loads(line).items() if "label" not in k}}, ensure_ascii=False)
        + "\n" for i, line in enumerate(dev)), encoding="utf-8")
    run_quietly(tnews.main, ["--model", "tiny", "--epochs", "1", "--limit", str(limit), "--batch-size", "16",
                             "--maxlen", "32", "--verbose", "0", "--data-dir", str(data), "--output-dir", str(out)])
    predictor, records, found = check_predict_api_reproduces_the_leaderboard("tnews", out, limit, data)
    assert [p["label"] for p in predictor.predict([r["sentence"] for r in records])] == [f["label"] for f in found]
