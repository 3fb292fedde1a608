"""Score a prediction file against a labelled file with the task's metric (``clue.registry`` names it,
``clue.metrics`` computes it):

    python scripts/evaluate.py afqmc results/dev/afqmc_dev.json datasets/afqmc/dev.json
    python scripts/evaluate.py c3 results/dev/c3_dev.json datasets/c3/c3-d-dev.json datasets/c3/c3-m-dev.json

Every task run writes its dev predictions, in the leaderboard format, to ``results/dev/<task>_dev.json``;
scored here against the dev file (the records a ``--limit`` run kept) they give the dev score the run printed.

Predictions are in the leaderboard format (``{"id", "label"}`` lines; one JSON object for cmrc2018 and
chid); a labelled file in the task's own format is read as predictions too, so gold against itself scores
100. Predictions are matched to gold by id; a prediction without an id by its position. A labelled example
without a prediction counts as wrong (and is reported; none matched at all is an error, as is an answer of
the wrong shape, named by file and line); gold rows whose label is outside the task's label
set (NLI "-") are not scored, as in training. The last line printed is ``<metric>: <value in percent>``.
"""

import json
from pathlib import Path

from clue import data, registry
from clue.metrics import METRICS
from clue.submit_check import load_object


def _leaderboard(task, path):
    """[(id or line index, answer)] of a file in the leaderboard format, or None when the file is in the
    task's own format: a JSON array (c3), or where the leaderboard wants one object {id: answer}, anything
    else (cmrc2018's SQuAD files, ChID's lines)."""
    if task.style == "lines":
        if data.read_text(path).lstrip("\ufeff").lstrip().startswith("["):
            return None
        answers = []
        for index, (line, record) in enumerate(data.iter_json_lines(path)):
            data.require(record, ("label",), path, line)
            _check_answer(task, record["label"], path, line)
            answers.append((record.get("id", index), record["label"]))   # no id: keyed by position
        return answers
    try:
        obj, repeated = load_object(path)
    except json.JSONDecodeError:
        return None   # not one JSON value; if it is broken, the task's reader says where
    if not isinstance(obj, dict) or any(isinstance(v, (list, dict)) for v in obj.values()):
        return None
    if repeated:   # json.loads would silently keep the last
        raise data.DataError(path, None, f"given more than once: {', '.join(map(repr, repeated))}")
    lines = data.Lines(data.read_text(path))
    for key, value in obj.items():
        _check_answer(task, value, path, lines.of(key))
    return list(obj.items())


def _is_spans(places):
    return isinstance(places, list) and all(
        isinstance(p, list) and len(p) == 2 and all(data.is_int(x) for x in p) for p in places)


# What a leaderboard answer is (registry Task.answer) -> (is this value one, how to say what one is)
ANSWER_SHAPES = {
    "label": (lambda v: isinstance(v, str) or data.is_int(v), "a label (a string or an integer)"),
    "text": (lambda v: isinstance(v, str), "an answer text (a string)"),
    "candidate": (data.is_int, "a candidate index (an integer)"),
    "entities": (lambda v: isinstance(v, dict) and all(
        isinstance(spans, dict) and all(map(_is_spans, spans.values())) for spans in v.values()),
        "entities {type: {entity: [[start, end], ...]}}"),
}


def _check_answer(task, value, path, line):
    fits, what = ANSWER_SHAPES[task.answer]
    if not fits(value):
        raise data.DataError(path, line, f"the answer {value!r} is not {what}")


def read_answers(task, paths, predictions=False):
    """[(id, answer)] of a leaderboard file, or of a labelled file in the task's own format (c3: its d- and
    m- parts) read by the task's reader. Read as predictions, a labelled file's first gold answer is its
    prediction (cmrc2018 lists every accepted answer)."""
    paths = [Path(p) for p in paths]
    found = _leaderboard(task, paths[0]) if len(paths) == 1 else None
    if found is not None:
        return found
    records = task.read(paths)
    if not predictions:   # gold: every record labelled
        task.check("dev", paths, records)
    answers = [(r["id"], r[task.gold]) for r in records]
    if predictions:
        answers = [(k, (v[0] if v else "") if isinstance(v, list) else v) for k, v in answers]
    return answers


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
    gold = read_answers(task, gold_paths)
    if not gold:
        raise ValueError(f"{', '.join(map(str, gold_paths))}: no labelled examples")
    predictions = read_answers(task, [predictions_path], predictions=True)
    if task.labels is not None:   # labels compare as strings ("1" and 1 are the same answer)
        gold = [(k, None if v is None else str(v)) for k, v in gold]
        predictions = [(k, None if v is None else str(v)) for k, v in predictions]
    golds, preds, warnings = align(gold, predictions, task.labels)
    if golds and all(p is None for p in preds):   # a score of 0 that says nothing: wrong file or wrong ids
        raise ValueError(f"{predictions_path}: none of the {len(golds)} gold examples of "
                         f"{', '.join(map(str, gold_paths))} has a prediction (gold ids such as "
                         f"{gold[0][0]!r}; prediction ids such as {predictions[0][0] if predictions else None!r})")
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
