"""Check leaderboard files against the test files they answer, and pack them into ``submit.zip``.

A CLUE 1.1 submission is nine files (``CLUE11``); CLUENER is submitted on its own. Which task and test
file each name belongs to, and its label set, come from ``clue.registry``; test ids from ``clue.data``'s
loaders. Every problem in every file is listed; the zip is written only when there are none, and then
through a temporary file, so an earlier ``submit.zip`` is never half overwritten.
"""

import difflib
import json
import os
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

from clue import data, registry, submission
from clue.paths import MissingPathError, find_task_dir

CLUE11 = tuple(f"{n}_predict.json" for n in (
    "afqmc", "tnews11", "iflytek", "ocnli_50k", "cluewsc11", "csl", "cmrc2018", "chid11", "c311"))
CLUENER = ("cluener_predict.json",)


def outputs():
    """{leaderboard file name: task} for every output the registry knows."""
    return {name: task for task in registry.TASKS.values() for name in task.output_names()}


def test_file(task, name, data_dir=None):
    """The test file the output ``name`` of ``task`` answers, or a MissingPathError naming what was tried."""
    folder = find_task_dir(task.name, data_dir)
    found = dict((out, path) for path, out in task.test_outputs(folder))
    if name not in found:
        tests = next(o.tests for o in task.outputs if o.name == name)
        raise MissingPathError(f"{name}: no test file to check it against (looked for "
                               f"{' or '.join(str(folder / t) for t in tests)})")
    return found[name]


def test_ids(task, path):
    """The ids a prediction file must hold, in test-file order; chid: {blank: number of candidates}."""
    if task.name == "cmrc2018":
        return [r["id"] for r in data.load_cmrc2018(path)]
    if task.name == "chid":
        return {r["id"]: len(r["candidates"]) for r in data.load_chid(path)}
    if task.name == "c3":
        return [r["id"] for r in data.load_c3(path)]
    if task.name == "cluener":
        return [r["id"] for r in data.load_cluener(path)]
    return [r.get("id", i) for i, r in enumerate(data.load_json_lines(path))]


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
    problems += [f"{path}: id {k!r} is missing" for k in ids if k not in obj]
    problems += [f"{path}: id {k!r}: {v!r} is not {what(k)}" for k, v in obj.items()
                 if k in expected and not value_ok(k, v)]
    return problems


def check_cluener_labels(path, test_path):
    """Problems with the entities of a cluener file: known types, offsets that spell the entity."""
    texts = {r["id"]: r["text"] for r in data.load_cluener(test_path)}
    problems = []
    for number, row in _rows(path):
        label, text = row.get("label"), texts.get(row.get("id"))
        if not isinstance(label, dict):
            problems.append(f"{path}:{number}: label must be an object {{type: {{entity: [[start, end]]}}}}")
            continue
        for kind, entities in label.items():
            if kind not in data.CLUENER_TYPES:
                problems.append(f"{path}:{number}: entity type {kind!r} is not one of the 10 CLUENER types")
            for entity, places in (entities.items() if isinstance(entities, dict) else [(None, None)]):
                for place in places if isinstance(places, list) else [None]:
                    ok = (isinstance(place, list) and len(place) == 2 and all(isinstance(x, int) for x in place)
                          and text is not None and 0 <= place[0] <= place[1] < len(text))
                    if not ok or text[place[0]:place[1] + 1] != entity:
                        problems.append(f"{path}:{number}: {kind} {entity!r} at {place} does not spell the "
                                        f"entity in the test text")
    return problems


def _rows(path):
    """(line number, object) of the readable lines of a JSON-lines file (the rest is check_labels's job)."""
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").split("\n"), 1):
        try:
            row = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            yield number, row


def check_file(path, task, test_path):
    """Every problem of one leaderboard file, as ``file:line: what`` strings (empty: valid)."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:   # e.g. a file cut inside a Chinese character
        line = raw[:err.start].count(b"\n") + 1
        return [f"{path}:{line}: not valid UTF-8 ({err.reason} at byte {err.start}; truncated?)"]
    if task.name == "cmrc2018":
        return check_object(path, test_ids(task, test_path), lambda k, v: isinstance(v, str), lambda k: "a string")
    if task.name == "chid":
        counts = test_ids(task, test_path)
        return check_object(path, list(counts),
                            lambda k, v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < counts[k],
                            lambda k: f"a candidate index 0..{counts[k] - 1}")
    ids = test_ids(task, test_path)
    if task.name == "cluener":   # labels are entity tables: check them here, ids with the shared checker
        problems = [p for p in submission.check_labels(path, ids) if "is not a string" not in p]
        return problems + check_cluener_labels(path, test_path)
    return submission.check_labels(path, ids, task.labels)


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
    """The files at the root of ``zip_path``, written to a temporary name and renamed."""
    zip_path = Path(zip_path)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{zip_path.name}.", suffix=".tmp", dir=zip_path.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in files:
                zf.write(path, Path(path).name)
        os.replace(tmp, zip_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return zip_path


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
