"""A CLUE-layout data folder for the classification task tests, made at test time from ../shared/clue_data.

Where the shared data has the file it is linked (afqmc and csl train on their real train sets, cluewsc2020
has both test sets); where a split is missing it is cut from another one: iflytek trains on the first part
of dev and keeps the rest as dev; tnews gets test.json and
test1.0.json made from dev lines (labels removed, ids added); cmnli, absent altogether, gets a fixture in
its documented format (sentence1, sentence2, label with "-" rows; test lines with ids) cut from OCNLI.
Nothing here is committed: the folder lives in pytest's tmp_path.
"""

import json
from pathlib import Path


def _lines(path):
    return [line for line in Path(path).read_text(encoding="utf-8").split("\n") if line.strip()]


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _link(src, dst):
    dst.symlink_to(Path(src).resolve())


def _split_dev(shared, folder, train_size):
    """train.json = the first ``train_size`` dev lines, dev.json = the rest."""
    lines = _lines(shared / "dev.json")
    (folder / "train.json").write_text("\n".join(lines[:train_size]) + "\n", encoding="utf-8")
    (folder / "dev.json").write_text("\n".join(lines[train_size:]) + "\n", encoding="utf-8")


def _unlabelled(lines, fields, first_id=0):
    rows = []
    for i, line in enumerate(lines):
        record = json.loads(line)
        rows.append({"id": first_id + i, **{f: record[f] for f in fields}})
    return rows


def build(shared, root):
    """Create ``root/<task>/`` for the seven classification tasks; returns ``root``."""
    shared, root = Path(shared), Path(root)
    for task in ("afqmc", "tnews", "iflytek", "cmnli", "ocnli", "cluewsc2020", "csl"):
        (root / task).mkdir(parents=True, exist_ok=True)
    for task in ("afqmc", "csl"):
        for name in ("train.json", "dev.json", "test.json"):
            _link(shared / task / name, root / task / name)
    _split_dev(shared / "iflytek", root / "iflytek", 1300)
    _link(shared / "iflytek" / "test.json", root / "iflytek" / "test.json")
    _link(shared / "iflytek" / "labels.json", root / "iflytek" / "labels.json")

    for name in ("train.json", "dev.json", "labels.json"):
        _link(shared / "tnews" / name, root / "tnews" / name)
    dev = _lines(shared / "tnews" / "dev.json")
    # ids that are not line numbers, so a writer that numbers lines itself is caught
    _write(root / "tnews" / "test.json", _unlabelled(dev[-400:], ("sentence", "keywords"), first_id=5000))
    _write(root / "tnews" / "test1.0.json", _unlabelled(dev[-800:-400], ("sentence", "keywords"), first_id=9000))

    for name in ("train.50k.json", "dev.json", "test.json"):
        _link(shared / "ocnli" / name, root / "ocnli" / name)
    for name in ("train.json", "dev.json", "test.json", "test1.0.json"):
        _link(shared / "cluewsc2020" / name, root / "cluewsc2020" / name)

    # cmnli: the documented format, cut from OCNLI (dev has "-" rows among its first 300)
    keep = ("sentence1", "sentence2", "label")
    _write(root / "cmnli" / "train.json", [{k: json.loads(x)[k] for k in keep}
                                           for x in _lines(shared / "ocnli" / "train.3k.json")[:600]])
    _write(root / "cmnli" / "dev.json", [{k: json.loads(x)[k] for k in keep}
                                         for x in _lines(shared / "ocnli" / "dev.json")[:600]])
    _write(root / "cmnli" / "test.json", _unlabelled(_lines(shared / "ocnli" / "test.json")[:500],
                                                      ("sentence1", "sentence2")))
    return root
