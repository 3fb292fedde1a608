"""A small CLUE-layout data folder for the run_clue / make_submission tests, made from ../shared/clue_data.

Every split is a few dozen real records so that the task scripts, run with ``--limit`` no smaller than
these sizes, predict every line of every test file (a submission is checked against the whole test file).
Whole files are symlinked; cut files are written into the test's tmp_path (never committed). Splits the
shared data lacks are cut from another split: iflytek's train from its dev, a tnews test set from dev lines
without labels; chid is the generated fixture. The rest come from the real files: afqmc, csl and cmrc2018
train sets, CLUE's unlabelled cmrc2018 and c3 test sets (c3 test1.1 and test1.0), and cluewsc2020's
version 1.1 and 1.0 test sets.
"""

import json
from pathlib import Path

from chid_fixture import make_chid

SIZE = 24        # records per split (questions for cmrc2018 and c3 are close to it)
CLUE11_TASKS = ("afqmc", "tnews", "iflytek", "ocnli", "cluewsc2020", "csl", "cmrc2018", "chid", "c3")


def _lines(path):
    return [line for line in Path(path).read_text(encoding="utf-8").split("\n") if line.strip()]


def _write_lines(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_json(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")


def _unlabelled(lines, drop, first_id):
    rows = []
    for i, line in enumerate(lines):
        record = {k: v for k, v in json.loads(line).items() if k not in drop}
        rows.append(json.dumps({"id": first_id + i, **record}, ensure_ascii=False))
    return rows


def _articles(doc, questions):
    """The first articles of a SQuAD-style file holding about ``questions`` questions."""
    out, count = [], 0
    for article in doc["data"]:
        if count >= questions:
            break
        count += sum(len(paragraph["qas"]) for paragraph in article["paragraphs"])
        out.append(article)
    return {**doc, "data": out}


def _c3_docs(path, questions):
    """The first documents of a C3 file holding about ``questions`` questions, as they are."""
    docs, count = [], 0
    for doc in json.loads(Path(path).read_text(encoding="utf-8")):
        if count >= questions:
            break
        docs.append(doc)
        count += len(doc[1])
    return docs


def build(shared, root, size=SIZE):
    """Create ``root/<task>/`` for the nine CLUE 1.1 tasks and cluener; returns ``root``."""
    shared, root = Path(shared), Path(root)
    dev = _lines(shared / "iflytek" / "dev.json")   # no train set in the shared data: the start of dev
    _write_lines(root / "iflytek" / "train.json", dev[:size])
    _write_lines(root / "iflytek" / "dev.json", dev[size:2 * size])
    _write_lines(root / "iflytek" / "test.json", _lines(shared / "iflytek" / "test.json")[:size])
    for task in ("tnews", "iflytek"):
        (root / task).mkdir(parents=True, exist_ok=True)
        (root / task / "labels.json").symlink_to((shared / task / "labels.json").resolve())
    tnews = _lines(shared / "tnews" / "dev.json")
    _write_lines(root / "tnews" / "train.json", _lines(shared / "tnews" / "train.json")[:size])
    _write_lines(root / "tnews" / "dev.json", tnews[:size])
    _write_lines(root / "tnews" / "test.json", _unlabelled(tnews[-size:], ("label", "label_desc"), 7000))
    for task, train in (("afqmc", "train.json"), ("csl", "train.json"), ("ocnli", "train.50k.json"),
                        ("cluewsc2020", "train.json"), ("cluener", "train.json")):
        _write_lines(root / task / train, _lines(shared / task / train)[:size])
        _write_lines(root / task / "dev.json", _lines(shared / task / "dev.json")[:size])
        _write_lines(root / task / "test.json", _lines(shared / task / "test.json")[:size])
    _write_lines(root / "cluewsc2020" / "test1.0.json", _lines(shared / "cluewsc2020" / "test1.0.json")[:size])

    def cmrc(name):
        return json.loads((shared / "cmrc2018" / f"cmrc2018_{name}.json").read_text(encoding="utf-8"))

    for split in ("train", "dev", "test"):   # the test file keeps its FAKE_ANSWER placeholders, as released
        _write_json(root / "cmrc2018" / f"{split}.json", _articles(cmrc(split), size))

    for part in ("d", "m"):
        _write_json(root / "c3" / f"{part}-train.json", _c3_docs(shared / "c3" / f"c3-{part}-train.json", size // 2))
        _write_json(root / "c3" / f"{part}-dev.json", _c3_docs(shared / "c3" / f"c3-{part}-dev.json", size // 2))
    for name in ("test1.1.json", "test1.0.json"):
        _write_json(root / "c3" / name, _c3_docs(shared / "c3" / name, size))

    make_chid(root / "chid", sizes=(("train", 8), ("dev", 4), ("test1.1", 4)))
    return root


# flags of the one run_clue call the run_clue and make_submission tests share
RUN_FLAGS = ["--model", "tiny", "--epochs", "1", "--limit", "64", "--maxlen", "96", "--batch-size", "32",
             "--seed", "1", "--quiet", "--", "--verbose", "0"]
_RUNS = {}


def clue11_run(tmp_path_factory, shared):
    """(data folder, output folder, exit code): run_clue over the nine CLUE 1.1 tasks, once per session."""
    if "clue11" not in _RUNS:
        from clue import run_all

        root = tmp_path_factory.mktemp("clue11")
        data = build(shared, root / "data")
        out = root / "out"
        code = run_all.main([*CLUE11_TASKS, "--data-dir", str(data), "--output-dir", str(out), *RUN_FLAGS])
        _RUNS["clue11"] = (data, out, code)
    return _RUNS["clue11"]
