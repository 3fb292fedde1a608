"""Check leaderboard files against the test files they answer, and pack them into ``submit.zip``.

A CLUE 1.1 submission is nine files; CLUENER is submitted on its own (``clue.registry`` says which files
make each, which task and test file each answers and what an answer is); the test ids come from the task's
own reader. Every problem in every file is listed; the zip is written only when there are none, and then
through ``clue.paths.atomic_path``, so an earlier ``submit.zip`` is never half overwritten.
"""

import difflib
import json
import zipfile
from collections import Counter
from pathlib import Path

from clue import data, registry, submission
from clue.paths import MissingPathError, atomic_path, find_task_dir

CLUE11 = registry.board_files(registry.CLUE11)
CLUENER = registry.board_files(registry.CLUENER)


def outputs():
    """{leaderboard file name: task} for every output the registry knows."""
    return {name: task for task in registry.TASKS.values() for name in task.output_names()}


def test_file(task, name, data_dir=None):
    """The test file (its parts) the output ``name`` of ``task`` answers, or a MissingPathError naming what
    was tried."""
    folder = find_task_dir(task.name, data_dir)
    found = {out: paths for paths, out in task.test_outputs(folder)}
    if name not in found:
        split = next(o.split for o in task.outputs if o.name == name)
        raise MissingPathError(f"{name}: no test file to check it against (looked for "
                               f"{' or '.join(str(folder / t) for t in task.file_names(split))})")
    return found[name]


def load_object(path):
    """(whole-file JSON value, {key: count} of the keys given more than once): ``json.loads`` alone would
    silently keep the last of a repeated key."""
    repeated = {}

    def pairs_hook(pairs):
        counts = Counter(key for key, _ in pairs)
        repeated.update((key, n) for key, n in counts.items() if n > 1)
        return dict(pairs)

    return json.loads(data.read_text(path).lstrip("\ufeff"), object_pairs_hook=pairs_hook), repeated


def _load_object(path, problems):
    """A one-object JSON file (cmrc2018, chid) with its problems added to ``problems``; None when unreadable."""
    try:
        obj, repeated = load_object(path)
    except json.JSONDecodeError as err:
        problems.append(f"{path}:{err.lineno}: not valid JSON ({err.msg} at column {err.colno}; truncated?)")
        return None
    problems.extend(f"{path}: id {key!r} appears {n} times" for key, n in repeated.items())
    if not isinstance(obj, dict):
        problems.append(f"{path}: expected one JSON object {{id: answer}}, got {type(obj).__name__}")
        return None
    return obj


def check_object(path, ids, value_ok, what):
    """Problems of a one-object file: every id of ``ids`` once, no other key, each value ``value_ok``."""
    problems = []
    obj = _load_object(path, problems)
    if obj is None:
        return problems
    expected = set(ids)
    problems += [f"{path}: id {k!r} is not in the test file" for k in obj if k not in expected]
    problems += submission.missing_ids(path, ids, obj)
    problems += [f"{path}: id {k!r}: {v!r} is not {what(k)}" for k, v in obj.items()
                 if k in expected and not value_ok(k, v)]
    return problems


def entity_problems(texts):
    """``label_problems`` for cluener lines: known types, offsets that spell the entity in the test text."""
    def problems(row_id, label):
        if not isinstance(label, dict):
            return ["label must be an object {type: {entity: [[start, end]]}}"]
        found, text = [], texts.get(row_id)
        for kind, entities in label.items():
            if kind not in registry.CLUENER_TYPES:
                found.append(f"entity type {kind!r} is not one of the 10 CLUENER types")
            for entity, places in (entities.items() if isinstance(entities, dict) else [(None, None)]):
                for place in places if isinstance(places, list) else [None]:
                    ok = (isinstance(place, list) and len(place) == 2 and all(isinstance(x, int) for x in place)
                          and text is not None and 0 <= place[0] <= place[1] < len(text))
                    if not ok or text[place[0]:place[1] + 1] != entity:
                        found.append(f"{kind} {entity!r} at {place} does not spell the entity in the test text")
        return found
    return problems


def _ids(test):
    return [r["id"] for r in test]


def _check_candidates(path, task, test):
    counts = {r["id"]: len(r["candidates"]) for r in test}   # ChID: a line's blanks share its candidates
    return check_object(path, list(counts),
                        lambda k, v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < counts[k],
                        lambda k: f"a candidate index 0..{counts[k] - 1}")


# What a leaderboard answer is (registry Task.answer) -> the problems of a file of them, given the test records
CHECKS = {
    "label": lambda path, task, test: submission.check_labels(path, _ids(test), task.labels),
    "entities": lambda path, task, test: submission.check_lines(path, _ids(test), entity_problems(
        {r["id"]: r["text"] for r in test})),
    "text": lambda path, task, test: check_object(path, _ids(test), lambda k, v: isinstance(v, str),
                                                  lambda k: "a string"),
    "candidate": _check_candidates,
}


def check_file(path, task, test_files):
    """Every problem of one leaderboard file, as ``file:line: what`` strings (empty: valid)."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:   # e.g. a file cut inside a Chinese character
        line = raw[:err.start].count(b"\n") + 1
        return [f"{path}:{line}: not valid UTF-8 ({err.reason} at byte {err.start}; truncated?)"]
    return CHECKS[task.answer](path, task, task.read(test_files))


def check_submission(results_dir, data_dir=None, required=CLUE11):
    """(problems, notes, files to pack) for the leaderboard files in ``results_dir``."""
    results_dir = Path(results_dir)
    known = outputs()
    missing_from_registry = [n for n in required if n not in known]
    if missing_from_registry:   # a registry without these tasks cannot check them
        raise KeyError(f"clue.registry has no task writing {', '.join(missing_from_registry)}")
    problems, notes, files = [], [], []
    present = sorted(p.name for p in results_dir.glob("*.json")) if results_dir.is_dir() else []
    if not results_dir.is_dir():
        problems.append(f"{results_dir}: no such folder")
    which = "CLUENER" if tuple(required) == CLUENER else "CLUE 1.1"
    for name in present:
        if name in required:
            continue
        if name in known:
            notes.append(f"{name}: not part of a {which} submission, left out")
        elif name.endswith("_predict.json"):   # meant as a leaderboard file, but under a name CLUE rejects
            close = (difflib.get_close_matches(name, required, n=1, cutoff=0.6)
                     or difflib.get_close_matches(name, list(known), n=1, cutoff=0.6))
            problems.append(f"{results_dir / name}: wrong file name, not a leaderboard file"
                            + (f" (did you mean {close[0]}?)" if close else ""))
        else:
            notes.append(f"{name}: not a leaderboard file, left out")
    for name in required:
        task, path = known[name], results_dir / name
        if not path.is_file():
            problems.append(f"{path}: missing file ({task.name} writes it: python {task.script})")
            continue
        try:
            found = check_file(path, task, test_file(task, name, data_dir))
        except (MissingPathError, data.DataError) as err:
            problems.append(f"{path}: cannot be checked: {err}")
            continue
        problems += found
        if not found:
            files.append(path)
    return problems, notes, files


def write_zip(files, zip_path):
    """The files at the root of ``zip_path``, written through ``atomic_path``."""
    with atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            zf.write(path, Path(path).name)
    return Path(zip_path)


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(
        description="Check the leaderboard files against their test files and pack them: CLUE 1.1 "
                    f"({', '.join(CLUE11)}) into submit.zip, or with --cluener {CLUENER[0]} into its own zip.")
    parser.add_argument("--results", default="results", help="folder holding the *_predict.json files")
    parser.add_argument("--data-dir", help="folder holding the task folders with the test files "
                                           "(default: $CLUE_DATA_DIR, else ./datasets)")
    parser.add_argument("--output", help="zip to write (default: submit.zip, or cluener_submit.zip)")
    parser.add_argument("--cluener", action="store_true", help="pack cluener_predict.json on its own")
    parser.add_argument("--check-only", action="store_true", help="report, write no zip")
    args = parser.parse_args(argv)
    required = CLUENER if args.cluener else CLUE11
    output = args.output or ("cluener_submit.zip" if args.cluener else "submit.zip")
    try:
        problems, notes, files = check_submission(args.results, args.data_dir, required)
    except (KeyError, MissingPathError, data.DataError) as err:
        print(f"error: {err}")
        return 1
    for note in notes:
        print(f"note: {note}")
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem{'s' if len(problems) > 1 else ''} found: {output} not written")
        return 1
    print(f"all {len(files)} files valid: {', '.join(p.name for p in files)}")
    if not args.check_only:
        write_zip(files, output)
        print(f"wrote {output}")
    return 0
