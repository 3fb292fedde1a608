"""Leaderboard files: written atomically (``clue.paths.write_atomic``: a crash never leaves half a file),
and checked line by line against the ids of the test file they answer.

CLUE takes one JSON object per line, ``{"id": <the test line's own id>, "label": <the answer>}``, in
test-file order (cmrc2018 and chid take a single JSON object instead).
"""

import json
from pathlib import Path

from clue.paths import write_atomic


def write_lines(path, rows):
    """One JSON object per line (UTF-8, not escaped), atomically."""
    return write_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def write_labels(path, ids, labels):
    """The CLUE classification format: ``{"id": id, "label": label}`` per line, in the given order."""
    ids, labels = list(ids), list(labels)
    if len(ids) != len(labels):
        raise ValueError(f"{path}: {len(ids)} ids but {len(labels)} labels")
    return write_lines(path, ({"id": i, "label": str(label)} for i, label in zip(ids, labels)))


def write_object(path, obj):
    """A single JSON object (cmrc2018, chid), atomically."""
    return write_atomic(path, json.dumps(obj, ensure_ascii=False, indent=1) + "\n")


def check_labels(path, ids, labels=None):
    """Problems found in a one-object-per-line prediction file, as readable strings (empty: valid).

    ``ids`` are the test file's ids in order; every one must appear exactly once, in that order, and each
    label must be a string in ``labels`` (when given).
    """

    def label_problems(_, label):
        if not isinstance(label, str):
            return [f"label {label!r} is not a string"]
        if labels is not None and label not in labels:
            return [f"label {label!r} is not in the label set"]
        return []

    return check_lines(path, ids, label_problems)


def check_lines(path, ids, label_problems):
    """``check_labels`` with each row's label judged by ``label_problems(id, label)``: what is wrong with
    it (empty when nothing is)."""
    path = Path(path)
    if not path.is_file():
        return [f"{path}: missing"]
    problems, seen = [], []
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        problems.append(f"{path}: does not end with a newline (truncated?)")
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append(f"{path}:{number}: not valid JSON ({err.msg})")
            continue
        if not isinstance(row, dict) or set(row) != {"id", "label"}:
            problems.append(f"{path}:{number}: expected an object with exactly 'id' and 'label', got {line[:80]}")
            continue
        problems += [f"{path}:{number}: {problem}" for problem in label_problems(row["id"], row["label"])]
        seen.append((number, row["id"]))
    problems += _check_ids(path, [i for _, i in seen], [n for n, _ in seen], list(ids))
    return problems


MISSING_NAMED = 5   # more missing ids than this are one line: such a short file is usually a --limit run


def missing_ids(path, expected, present):
    """Problems for the ids of ``expected`` not in ``present``: each named when few, else one counted line."""
    missing = [i for i in expected if i not in present]
    if len(missing) <= MISSING_NAMED:
        return [f"{path}: id {i!r} is missing" for i in missing]
    return [f"{path}: {len(expected) - len(missing):,} of {len(expected):,} ids ({len(missing):,} missing, the "
            f"first {missing[0]!r}) — a --limit run?"]


def _check_ids(path, got, line_numbers, expected):
    problems = []
    counts = {}
    for i in got:
        counts[i] = counts.get(i, 0) + 1
    expected_set = set(expected)
    for number, i in zip(line_numbers, got):
        if i not in expected_set:
            problems.append(f"{path}:{number}: id {i!r} is not in the test file")
    problems += [f"{path}: id {i!r} appears {n} times" for i, n in counts.items() if n > 1]
    problems += missing_ids(path, expected, counts)
    if not problems and got != expected:
        first = next(k for k, (a, b) in enumerate(zip(got, expected)) if a != b)
        problems.append(f"{path}:{line_numbers[first]}: id {got[first]!r} out of order "
                        f"(the test file has {expected[first]!r} there)")
    return problems
