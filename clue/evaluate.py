"""Score a prediction file against a labelled file with the task's metric (``clue.registry`` names it,
``clue.metrics`` computes it):

    python scripts/evaluate.py afqmc results/afqmc_dev_predict.json datasets/afqmc/dev.json
    python scripts/evaluate.py c3 preds.json datasets/c3/d-dev.json datasets/c3/m-dev.json

Predictions are in the leaderboard format (``{"id", "label"}`` lines; one JSON object for cmrc2018 and
chid); a labelled file in the task's own format is read as predictions too, so gold against itself scores
100. Predictions are matched to gold by id; a prediction without an id by its position. A labelled example
without a prediction counts as wrong (and is reported); gold rows whose label is outside the task's label
set (NLI "-") are not scored, as in training. The last line printed is ``<metric>: <value in percent>``.
"""

import json
from pathlib import Path

from clue import data, registry
from clue.metrics import METRICS
from clue.submit_check import load_object


def _lines(path, field):
    """[(id or line index, record[field])] of a JSON-lines file; a record without "id" keys by position."""
    out = []
    for index, (line, record) in enumerate(data.iter_json_lines(path)):
        data.require(record, (field,), path, line)
        out.append((record.get("id", index), record[field]))
    return out


def _json_object(path):
    """A whole-file JSON value; a key given twice is an error (json.loads would keep only the last)."""
    try:
        obj, repeated = load_object(path)
    except json.JSONDecodeError as err:
        raise data.DataError(path, err.lineno, f"not valid JSON ({err.msg} at column {err.colno})") from None
    if repeated:
        raise data.DataError(path, None, f"given more than once: {', '.join(map(repr, repeated))}")
    return obj


def _chid_answers(path):
    """{blank: candidate index} from an answer file, or from a ChID file with its ``*_answer.json`` beside it."""
    path = Path(path)
    first = data.read_text(path).lstrip("\ufeff").lstrip().split("\n", 1)[0]
    try:
        is_content = "content" in json.loads(first)   # a ChID line; an answer file starts with "{" alone
    except (json.JSONDecodeError, TypeError):
        is_content = False
    if is_content:
        answer_path = path.with_name(f"{path.stem}_answer.json")
        return [(r["id"], r["label"]) for r in data.load_chid(path, answer_path)]
    return list(_json_object(path).items())


def read_gold(task, paths):
    """[(id, gold)] of a labelled file (c3: the d- and m- files) in the task's own format."""
    paths = [Path(p) for p in paths]
    if task.name == "cmrc2018":
        return [(r["id"], r["answers"]) for r in data.load_cmrc2018(paths[0])]
    if task.name == "c3":
        return [(r["id"], None if r["label"] is None else str(r["label"])) for r in data.load_c3(paths)]
    if len(paths) > 1:
        raise ValueError(f"{task.name}: one labelled file, got {len(paths)}")
    if task.name == "chid":
        return _chid_answers(paths[0])
    return _lines(paths[0], "label")


def read_predictions(task, path):
    """[(id, prediction)] of a prediction file, or of a labelled file used as predictions."""
    path = Path(path)
    text = data.read_text(path).lstrip("\ufeff").lstrip()
    if task.name == "cmrc2018":
        obj = _json_object(path)
        if "data" in obj:   # a SQuAD-style file: its first answer to each question
            return [(r["id"], r["answers"][0] if r["answers"] else "") for r in data.load_cmrc2018(path)]
        return list(obj.items())
    if task.name == "chid":
        return _chid_answers(path)
    if task.name == "c3" and text.startswith("["):
        return [(r["id"], str(r["label"])) for r in data.load_c3(path)]
    return _lines(path, "label")


def align(gold, predictions, labels=None):
    """(gold values, predictions) of the scored examples, and warnings. Keys compare as strings."""
    by_key = {}
    for key, value in predictions:
        if str(key) in by_key:
            raise ValueError(f"prediction id {key!r} appears more than once")
        by_key[str(key)] = value
    golds, preds, missing, skipped = [], [], [], 0
    for key, value in gold:
        if labels is not None and value not in labels:
            skipped += 1    # NLI "-": no majority label
            continue
        if str(key) not in by_key:
            missing.append(key)
        golds.append(value)
        preds.append(by_key.get(str(key)))
    warnings = []
    if skipped:
        warnings.append(f"{skipped} gold rows with a label outside the label set are not scored")
    if missing:
        warnings.append(f"{len(missing)} of {len(golds)} gold examples have no prediction (first: "
                        f"{', '.join(map(repr, missing[:5]))}); they count as wrong")
    extra = set(by_key) - {str(k) for k, _ in gold}
    if extra:
        warnings.append(f"{len(extra)} predictions have ids not in the gold file (ignored), e.g. "
                        f"{sorted(extra)[:5]}")
    return golds, preds, warnings


def metric_names(task):
    """The task's metric last, after the metrics that share its prefix (cmrc2018: F1, then EM)."""
    prefix = task.metric.split("_")[0]
    return [m for m in METRICS if m != task.metric and m.split("_")[0] == prefix] + [task.metric]


def evaluate(task_name, predictions_path, gold_paths):
    """({metric: fraction}, warnings)."""
    task = registry.get(task_name)
    gold = read_gold(task, gold_paths)
    if not gold:
        raise ValueError(f"{', '.join(map(str, gold_paths))}: no labelled examples")
    predictions = read_predictions(task, predictions_path)
    if task.labels is not None:   # labels compare as strings ("1" and 1 are the same answer)
        gold = [(k, None if v is None else str(v)) for k, v in gold]
        predictions = [(k, None if v is None else str(v)) for k, v in predictions]
    golds, preds, warnings = align(gold, predictions, task.labels)
    if task.name == "cluener":
        preds = [p if p is not None else {} for p in preds]
    return {name: METRICS[name](golds, preds) for name in metric_names(task)}, warnings


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(description="Score predictions against a labelled file; the last line "
                                                 "printed is '<metric>: <value in percent>'.")
    parser.add_argument("task", help="task name (afqmc, tnews, ..., cmrc2018, chid, c3, cluener) or script name")
    parser.add_argument("predictions", help="predictions in the leaderboard format (or a labelled file)")
    parser.add_argument("gold", nargs="+", help="labelled file(s) (c3: the d- and m- dev files)")
    args = parser.parse_args(argv)
    try:
        scores, warnings = evaluate(args.task, args.predictions, args.gold)
    except (KeyError, ValueError, OSError) as err:
        print(f"error: {err}")
        return 1
    for warning in warnings:
        print(f"warning: {warning}")
    for name, value in scores.items():
        print(f"{name}: {100 * value:.4f}")
    return 0
