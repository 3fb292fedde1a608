"""Readers for every CLUE file format, returning plain Python records (dicts).

- JSON lines (afqmc, tnews, iflytek, cmnli, ocnli, cluewsc2020, csl, cluener, chid): ``load_json_lines``;
  classification files through ``load_classification`` (label checked, NLI "-" rows dropped);
- ``labels.json`` (tnews, iflytek): ``load_labels``;
- SQuAD-style cmrc2018: ``load_cmrc2018`` (one record per question);
- C3 nested lists: ``load_c3`` (one record per question);
- ChID lines plus ``*_answer.json``: ``load_chid`` (one record per blank);
- CLUENER: ``load_cluener`` (entities as inclusive character spans).

Lines are split on "\\n" only (iflytek's test set has U+2028 inside strings, which ``str.splitlines`` would
break on); a trailing "\\r" (C3 uses CRLF), a leading U+FEFF and blank lines are ignored. Any problem raises
``DataError`` naming the file and the line. ``task_files`` finds a task's train/dev/test files.
"""

import json
from pathlib import Path

from clue.paths import TASKS, find_task_dir

NLI_LABELS = ("entailment", "neutral", "contradiction")
CLUENER_TYPES = ("address", "book", "company", "game", "government", "movie", "name", "organization",
                 "position", "scene")


class DataError(ValueError):
    """A data file is malformed; the message starts with ``file:line:``."""

    def __init__(self, path, line, message):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path, self.line = path, line


# -- JSON lines ------------------------------------------------------------------------------------------
def read_text(path):
    with open(path, encoding="utf-8", newline="") as f:  # newline="": keep \r and U+2028 as they are
        return f.read()


def iter_json_lines(path):
    """(line number from 1, parsed object) for each non-blank line of a JSON-lines file."""
    for number, line in enumerate(read_text(path).split("\n"), 1):
        line = line.rstrip("\r")
        if number == 1:
            line = line.lstrip("\ufeff")
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(path, number, f"not valid JSON ({err.msg} at column {err.colno})") from None


def require(record, fields, path, line):
    """Raise unless ``record`` is a JSON object holding every one of ``fields``."""
    if not isinstance(record, dict):
        raise DataError(path, line, f"expected a JSON object, got {type(record).__name__}")
    missing = [f for f in fields if f not in record]
    if missing:
        raise DataError(path, line, f"missing field{'s' if len(missing) > 1 else ''} "
                                    f"{', '.join(map(repr, missing))} (has {', '.join(record) or 'none'})")
    return record


def load_json_lines(path, fields=()):
    """The objects of a JSON-lines file, each checked to hold ``fields``; ``_line`` holds its line number."""
    records = []
    for line, record in iter_json_lines(path):
        require(record, fields, path, line)
        record["_line"] = line
        records.append(record)
    return records


def ensure_ids(records, path):
    """Give records without an ``id`` their index in the file (0-based), saying so once."""
    missing = [i for i, r in enumerate(records) if "id" not in r]
    for i in missing:
        records[i]["id"] = i
    if missing:
        print(f"note: {len(missing)} records of {path} have no 'id'; using their index in the file (from 0)")
    return records


def load_labels(path, field="label"):
    """``labels.json`` as {label: description}, in file order (tnews: "100" -> "news_story")."""
    labels = {}
    for line, record in iter_json_lines(path):
        require(record, (field,), path, line)
        desc = next((record[k] for k in ("label_desc", "label_des") if k in record), None)
        labels[str(record[field])] = desc
    return labels


def load_classification(path, fields, labels=None, label_field="label", drop=("-",)):
    """Records of a labelled or unlabelled classification file.

    ``fields`` must be on every line. Where a line has ``label_field`` its value (as a string) must be in
    ``labels`` (when given) unless it is one of ``drop`` (NLI's "-": no majority label), in which case the
    row is left out and the count printed. A file without labels (a test set) keeps its ``id`` field, or gets
    each record's index as its id.
    """
    allowed = None if labels is None else {str(x) for x in labels}
    records, dropped = [], 0
    for record in load_json_lines(path, fields):
        if label_field in record:
            label = record[label_field] = str(record[label_field])
            if label in drop:
                dropped += 1
                continue
            if allowed is not None and label not in allowed:
                raise DataError(path, record["_line"], f"label {label!r} is not one of {sorted(allowed)}")
        records.append(record)
    if dropped:
        print(f"{path}: dropped {dropped} rows labelled {' or '.join(map(repr, drop))}")
    if records and all(label_field not in r for r in records):  # a test file: predictions need ids
        ensure_ids(records, path)
    return records


# -- task files ------------------------------------------------------------------------------------------
# Names tried in order; the first found wins. CLUE 1.1 test sets first (the leaderboard's "11" files).
FILE_NAMES = {
    "default": {"train": ["train.json"], "dev": ["dev.json"], "test": ["test.json"]},
    "tnews": {"test": ["test.json", "test1.1.json", "test1.0.json"], "labels": ["labels.json"]},
    "iflytek": {"test": ["test.json", "test1.1.json", "test1.0.json"], "labels": ["labels.json"]},
    "cluewsc2020": {"test": ["test.json", "test1.1.json", "test1.0.json"]},
    "ocnli": {"train": ["train.50k.json", "train.json"]},
    "cmnli": {},
    "afqmc": {},
    "csl": {},
    "cluener": {},
    "cmrc2018": {"train": ["train.json", "cmrc2018_train.json"], "dev": ["dev.json", "cmrc2018_dev.json"],
                 "test": ["test.json", "cmrc2018_test.json"], "trial": ["trial.json", "cmrc2018_trial.json"]},
    "chid": {"test": ["test1.1.json", "test.json", "test1.0.json"],
             "train_answer": ["train_answer.json"], "dev_answer": ["dev_answer.json"]},
}
# C3: each split is a list of alternatives, each a list of parts (the d- and m- files), each a list of names.
C3_NAMES = {
    "train": [[["d-train.json", "c3-d-train.json"], ["m-train.json", "c3-m-train.json"]]],
    "dev": [[["d-dev.json", "c3-d-dev.json"], ["m-dev.json", "c3-m-dev.json"]]],
    "test": [[["test1.1.json"]], [["test1.0.json"]],
             [["d-test.json", "c3-d-test.json"], ["m-test.json", "c3-m-test.json"]]],
}


def _first(folder, names):
    return next((folder / n for n in names if (folder / n).is_file()), None)


def task_files(task, data_dir=None):
    """{"train", "dev", "test", ...: Path or None} for ``task``'s folder (see FILE_NAMES for the names).

    tnews/iflytek add "labels", cmrc2018 "trial", chid "train_answer"/"dev_answer". For c3 each split is a
    list of the files found (d- and m- parts), or None.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    folder = find_task_dir(task, data_dir)
    if task == "c3":
        out = {}
        for split, alternatives in C3_NAMES.items():
            found = ([f for f in (_first(folder, names) for names in parts) if f] for parts in alternatives)
            out[split] = next((files for files in found if files), None)
        return out
    names = {**FILE_NAMES["default"], **FILE_NAMES[task]}
    return {split: _first(folder, options) for split, options in names.items()}
