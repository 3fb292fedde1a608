"""clue.data: every shared CLUE file loads with the record counts its README states; every kind of
malformed input raises an error naming the file and line; the registry finds each task's files by their
alternative names and reads them."""

import json
import re

import pytest

from clue import data, registry
from clue.paths import MissingPathError, find_task_dir
from clue.registry import CLUENER_TYPES, NLI_LABELS


def readme_counts(clue_data_dir):
    """{"task/file.json": "4316 JSON lines" | "848 articles, 3219 questions" | ...} from the README's
    per-file provenance list, a trailing "(note)" cut off; every "### file" heading must have a count."""
    text = (clue_data_dir / "README.md").read_text(encoding="utf-8")
    found = re.findall(r"^### (\S+)\n(?:- .*\n)*?- bytes: [\d,]+; records: ([^;\n]+)", text, re.M)
    assert [name for name, _ in found] == re.findall(r"^### (\S+)$", text, re.M), "a file without a count"
    return {name: re.sub(r"\s*\(.*\)$", "", count.strip()) for name, count in found}


def load_counted(path, clue_data_dir, capsys):
    """What our loaders make of ``path``, in the README's terms."""
    task, name = path.parent.name, path.name
    labels = {t: data.load_labels(clue_data_dir / t / "labels.json") for t in ("tnews", "iflytek")}
    if name == "labels.json":
        return f"{len(data.load_labels(path))} JSON lines"
    if task == "cmrc2018":
        records = data.load_cmrc2018(path)
        return f"{len({r['article_id'] for r in records})} articles, {len(records)} questions"
    if task == "c3":
        records = data.load_c3(path)
        return f"{len({r['doc_id'] for r in records})} documents, {len(records)} questions"
    if task == "cluener":
        return f"{len(data.load_cluener(path, CLUENER_TYPES))} JSON lines"
    if task == "submit_examples":
        if name == "cmrc2018_predict.json":
            return f"JSON object with {len(data.load_json(path))} query_id keys"
        return f"{len(data.load_json_lines(path, ('id', 'label')))} JSON lines"
    fields, label_set = {
        "afqmc": (("sentence1", "sentence2"), ("0", "1")),
        "tnews": (("sentence", "keywords"), labels["tnews"]),
        "iflytek": (("sentence",), labels["iflytek"]),
        "ocnli": (("sentence1", "sentence2"), NLI_LABELS),
        "cluewsc2020": ({"text": str, "target": dict}, ("true", "false")),
        "csl": ({"abst": str, "keyword": list}, ("0", "1")),
    }[task]
    records = data.load_classification(path, fields, label_set)
    printed = capsys.readouterr().out
    dropped = re.search(r"dropped (\d+) rows", printed)
    dropped = int(dropped.group(1)) if dropped else 0
    assert all("id" in r for r in records) or all("label" in r for r in records)
    return f"{len(records) + dropped} JSON lines"


def test_every_shared_file_has_its_readme_count(clue_data_dir, capsys):
    counts = readme_counts(clue_data_dir)
    on_disk = {str(p.relative_to(clue_data_dir)) for p in clue_data_dir.rglob("*")
                if p.is_file() and p.parent != clue_data_dir}
    assert set(counts) == on_disk   # the README lists every staged file, and every listed file is there
    counted = {name: c for name, c in counts.items() if c != "not counted"}
    assert all(name.endswith(".json") for name in counted) and len(counted) >= 34
    for name, expected in counted.items():
        assert load_counted(clue_data_dir / name, clue_data_dir, capsys) == expected, name


def test_nli_dash_rows_dropped_with_a_count(clue_data_dir, capsys):
    records = data.load_classification(clue_data_dir / "ocnli" / "dev.json", ("sentence1", "sentence2"),
                                       NLI_LABELS)
    assert len(records) == 2950 and "-" not in {r["label"] for r in records}
    assert "dropped 50 rows labelled '-'" in capsys.readouterr().out


def test_pitfalls_of_the_real_files(clue_data_dir):
    iflytek = data.load_json_lines(clue_data_dir / "iflytek" / "test.json", ("id", "sentence"))
    assert sum("\u2028" in r["sentence"] for r in iflytek) > 0 and [r["id"] for r in iflytek] == list(range(2600))
    tnews = data.load_json_lines(clue_data_dir / "tnews" / "train.json", ("sentence",))
    assert sum("\ufeff" in r["sentence"] + r["keywords"] for r in tnews) > 0
    c3 = data.load_c3([clue_data_dir / "c3" / "c3-d-dev.json", clue_data_dir / "c3" / "c3-m-dev.json"])
    assert len(c3) == 1825 + 1991 and not any("\r" in line for r in c3 for line in r["context"])
    assert all(r["choices"][r["label"]] == r["answer"] for r in c3)
    ner = data.load_cluener(clue_data_dir / "cluener" / "dev.json", CLUENER_TYPES)
    assert all(r["text"][s] and e < len(r["text"]) for r in ner for s, e, _ in r["entities"])
    assert {kind for r in ner for _, _, kind in r["entities"]} == set(CLUENER_TYPES)
    cmrc = data.load_cmrc2018(clue_data_dir / "cmrc2018" / "cmrc2018_trial.json")
    assert all(r["answers"] and len(r["answers"]) == len(r["answer_starts"]) for r in cmrc)


def task_files(task, data_dir):
    return registry.get(task).find_files(find_task_dir(task, data_dir))


def names(paths):
    return None if paths is None else [p.name for p in paths]


def test_task_files_on_the_shared_data(clue_data_dir):
    files = task_files("tnews", clue_data_dir)
    assert names(files["train"]) == ["train.json"] and files["test"] is None and files["labels"][0].is_file()
    assert names(task_files("ocnli", clue_data_dir)["train"]) == ["train.50k.json"]
    c3 = task_files("c3", clue_data_dir)
    assert names(c3["train"]) == ["c3-d-train.json", "c3-m-train.json"]
    assert names(c3["test"]) == ["test1.1.json"] and names(c3["test1.0"]) == ["test1.0.json"]
    assert names(task_files("cmrc2018", clue_data_dir)["dev"]) == ["cmrc2018_dev.json"]


def _touch(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("", encoding="utf-8")
    return folder


def test_task_files_alternative_names(tmp_path):
    _touch(tmp_path / "tnews_public", "train.json", "dev.json", "test1.0.json", "labels.json")
    tnews = task_files("tnews", tmp_path)
    assert tnews["test"] is None and names(tnews["test1.0"]) == ["test1.0.json"]
    _touch(tmp_path / "tnews_public", "test.json")
    assert names(task_files("tnews", tmp_path)["test"]) == ["test.json"]
    _touch(tmp_path / "tnews_public", "test1.1.json")
    assert names(task_files("tnews", tmp_path)["test"]) == ["test1.1.json"]      # CLUE 1.1 by its own name first
    _touch(tmp_path / "c3", "d-train.json", "m-train.json", "d-dev.json", "c3-m-dev.json", "c3-d-test.json",
           "c3-m-test.json")
    c3 = task_files("c3", tmp_path)
    assert names(c3["train"]) == ["d-train.json", "m-train.json"]
    assert names(c3["dev"]) == ["d-dev.json", "c3-m-dev.json"]                   # a part by either of its names
    assert names(c3["test"]) == ["c3-d-test.json", "c3-m-test.json"]             # the upstream test set: both parts
    _touch(tmp_path / "c3", "test1.1.json")
    assert names(task_files("c3", tmp_path)["test"]) == ["test1.1.json"]
    _touch(tmp_path / "ocnli", "train.json", "dev.json")
    assert names(task_files("ocnli", tmp_path)["train"]) == ["train.json"]
    assert task_files("ocnli", tmp_path)["test"] is None
    _touch(tmp_path / "cmrc2018_public", "train.json", "cmrc2018_dev.json")
    cmrc = task_files("cmrc2018", tmp_path)
    assert names(cmrc["train"]) == ["train.json"] and names(cmrc["dev"]) == ["cmrc2018_dev.json"]
    with pytest.raises(MissingPathError, match="csl"):
        task_files("csl", tmp_path)
    with pytest.raises(ValueError, match="unknown task"):
        find_task_dir("glue", tmp_path)


def test_test_outputs_name_the_leaderboard_file_of_each_test_set(tmp_path):
    tnews = registry.get("tnews")
    assert tnews.test_outputs(tmp_path) == []
    _touch(tmp_path, "test1.0.json")
    assert tnews.test_outputs(tmp_path) == [([tmp_path / "test1.0.json"], "tnews10_predict.json")]
    _touch(tmp_path, "test.json")
    assert tnews.test_outputs(tmp_path) == [([tmp_path / "test.json"], "tnews11_predict.json"),
                                           ([tmp_path / "test1.0.json"], "tnews10_predict.json")]
    _touch(tmp_path / "c3", "c3-d-test.json", "c3-m-test.json")
    assert registry.get("c3").test_outputs(tmp_path / "c3") == [
        ([tmp_path / "c3" / "c3-d-test.json", tmp_path / "c3" / "c3-m-test.json"], "c311_predict.json")]


def test_chid_reads_the_answers_beside_its_file(tmp_path):
    from chid_fixture import make_chid

    written = make_chid(tmp_path, sizes=(("train", 2), ("test1.1", 2)))
    chid = registry.get("chid")
    train, test = chid.read(tmp_path / "train.json"), chid.read(tmp_path / "test1.1.json")
    assert {r["id"]: r["label"] for r in train} == written["train"][1]
    assert test and all(r["label"] is None for r in test)


# -- malformed input -------------------------------------------------------------------------------------
def _write(path, text):
    path.write_text(text, encoding="utf-8", newline="")
    return path


def test_json_lines_quirks_are_read(tmp_path):
    path = _write(tmp_path / "f.json", '\ufeff{"sentence": "a\u2028b", "label": "1"}\r\n\n'
                                       '{"sentence": "c", "label": "0"}')
    records = data.load_classification(path, ("sentence",), ("0", "1"))
    assert [r["sentence"] for r in records] == ["a\u2028b", "c"] and [r["_line"] for r in records] == [1, 3]


def test_bad_json_line_names_file_and_line(tmp_path):
    path = _write(tmp_path / "dev.json", '{"sentence": "a", "label": "1"}\n{"sentence": "b", "label": \n')
    with pytest.raises(data.DataError, match=rf"{re.escape(str(path))}:2: not valid JSON"):
        data.load_classification(path, ("sentence",), ("0", "1"))
    _write(path, '{"a": 1}\n["not", "an", "object"]\n')
    with pytest.raises(data.DataError, match=r"dev.json:2: expected a JSON object, got list"):
        data.load_json_lines(path)


def test_file_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "dev.json"
    path.write_bytes('{"sentence": "好"}\n{"sentence": "'.encode() + "坏".encode("gbk") + b'"}\n')
    with pytest.raises(data.DataError, match=r"dev.json:2: not UTF-8"):
        data.load_json_lines(path)


def test_missing_field_and_unknown_label(tmp_path):
    path = _write(tmp_path / "train.json", '{"sentence1": "a", "sentence2": "b", "label": "neutral"}\n'
                                           '{"sentence1": "a", "label": "neutral"}\n')
    with pytest.raises(data.DataError, match=r"train.json:2: missing field 'sentence2'"):
        data.load_classification(path, ("sentence1", "sentence2"), NLI_LABELS)
    _write(path, '{"sentence1": "a", "sentence2": "b", "label": "neutral"}\n'
                 '{"sentence1": "a", "sentence2": "b", "label": "-"}\n'
                 '{"sentence1": "a", "sentence2": "b", "label": "yes"}\n')
    with pytest.raises(data.DataError, match=r"train.json:3: label 'yes' is not one of"):
        data.load_classification(path, ("sentence1", "sentence2"), NLI_LABELS)
    _write(tmp_path / "labels.json", '{"label": "100", "label_desc": "x"}\n{"label_desc": "y"}')
    with pytest.raises(data.DataError, match=r"labels.json:2: missing field 'label'"):
        data.load_labels(tmp_path / "labels.json")


def test_test_file_without_ids_gets_indices(tmp_path, capsys):
    path = _write(tmp_path / "test.json", '{"sentence": "a"}\n{"sentence": "b"}\n')
    records = data.load_classification(path, ("sentence",), ("0", "1"))
    assert [r["id"] for r in records] == [0, 1] and "using their index" in capsys.readouterr().out


def _cmrc(qa=None, paragraph=None):
    qa = qa or {"question": "谁？", "id": "Q_1", "answers": [{"text": "我", "answer_start": 0}]}
    paragraph = paragraph or {"id": "P_1", "context": "我在这里。", "qas": [qa]}
    return {"version": "v1.0", "data": [{"id": "A_1", "title": "t", "paragraphs": [paragraph]}]}


def test_cmrc2018_errors(tmp_path):
    path = tmp_path / "cmrc2018_dev.json"
    _write(path, json.dumps(_cmrc(), indent=2, ensure_ascii=False))
    (record,) = data.load_cmrc2018(path)
    assert record["id"] == "Q_1" and record["answers"] == ["我"] and record["context"] == "我在这里。"
    _write(path, json.dumps(_cmrc(), indent=2)[:-10])
    with pytest.raises(data.DataError, match=r"cmrc2018_dev.json:\d+: not valid JSON"):
        data.load_cmrc2018(path)
    _write(path, json.dumps({"version": "v1.0"}))
    with pytest.raises(data.DataError, match="no 'data' list"):
        data.load_cmrc2018(path)
    _write(path, json.dumps(_cmrc(qa={"id": "Q_9", "answers": []}), indent=2))
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if '"Q_9"' in text)
    with pytest.raises(data.DataError, match=rf"cmrc2018_dev.json:{line}: missing field 'question'"):
        data.load_cmrc2018(path)
    _write(path, json.dumps(_cmrc(paragraph={"id": "P_7", "qas": []}), indent=2))
    with pytest.raises(data.DataError, match=r"cmrc2018_dev.json:\d+: missing field 'context'"):
        data.load_cmrc2018(path)
    _write(path, json.dumps(_cmrc(qa={"id": "Q_2", "question": "?", "answers": ["text"]}), indent=2))
    with pytest.raises(data.DataError, match=r"data\[0\].paragraphs\[0\].qas\[0\]: each answer needs a 'text'"):
        data.load_cmrc2018(path)


def test_c3_errors(tmp_path):
    doc = [["男：你好", "女：你好"], [{"question": "几个人？", "choice": ["一", "两"], "answer": "两"}], "1-1"]
    path = _write(tmp_path / "d-dev.json", json.dumps([doc], ensure_ascii=False, indent=1).replace("\n", "\r\n"))
    (record,) = data.load_c3(path)
    assert record["label"] == 1 and record["context"] == ["男：你好", "女：你好"] and record["doc_id"] == "1-1"
    doc[1][0]["answer"] = "三"
    _write(path, json.dumps([doc], ensure_ascii=False, indent=1))
    with pytest.raises(data.DataError, match=r"d-dev.json:\d+: document \[0\] question \[0\]: answer '三' is not"):
        data.load_c3(path)
    _write(path, json.dumps([[["only dialogue"]]]))
    with pytest.raises(data.DataError, match=r"document \[0\]: expected \[dialogue lines, questions, id\]"):
        data.load_c3(path)
    _write(path, json.dumps([[["x"], [{"question": "q"}], "2-2"]]))
    with pytest.raises(data.DataError, match=r"d-dev.json:\d+: missing field 'choice'"):
        data.load_c3(path)
    test = _write(tmp_path / "test1.1.json", json.dumps([[["x"], [{"question": "q", "choice": ["a", "b"]}], "3"]]))
    (record,) = data.load_c3(test)
    assert record["answer"] is None and record["label"] is None and record["id"] == 0


def _chid(folder):
    """Two ChID lines: three blanks, one passage holding two of them."""
    lines = [{"candidates": [f"成语{i}" for i in range(10)], "content": ["甲#idiom000000#乙#idiom000001#。"]},
             {"candidates": [f"词语{i}" for i in range(10)], "content": ["丙。", "丁#idiom000002#。"]}]
    path = _write(folder / "train.json", "\n".join(json.dumps(x, ensure_ascii=False) for x in lines))
    answers = _write(folder / "train_answer.json", json.dumps({"#idiom000000#": 3, "#idiom000001#": 0,
                                                               "#idiom000002#": 9}))
    return path, answers


def test_chid_blanks_and_answers(tmp_path):
    path, answers = _chid(tmp_path)
    records = data.load_chid(path, answers)
    assert [(r["id"], r["label"], r["group"], r["passage"]) for r in records] == [
        ("#idiom000000#", 3, 1, 0), ("#idiom000001#", 0, 1, 0), ("#idiom000002#", 9, 2, 1)]
    assert records[2]["text"] == "丁#idiom000002#。" and records[2]["candidates"][9] == "词语9"
    assert [r["label"] for r in data.load_chid(path)] == [None] * 3


def test_chid_errors(tmp_path):
    path, answers = _chid(tmp_path)
    _write(answers, json.dumps({"#idiom000000#": 3, "#idiom000002#": 9}))
    with pytest.raises(data.DataError, match=r"train.json:1: blank #idiom000001# has no answer in .*train_answer"):
        data.load_chid(path, answers)
    _write(answers, json.dumps({"#idiom000000#": 3, "#idiom000001#": 0, "#idiom000002#": 10}))
    with pytest.raises(data.DataError, match=r"train_answer.json:1: answer 10 of #idiom000002# is not a candidate"):
        data.load_chid(path, answers)
    _write(path, '{"content": ["#idiom000000#"]}')
    with pytest.raises(data.DataError, match=r"train.json:1: missing field 'candidates'"):
        data.load_chid(path)


def test_cluener_errors(tmp_path):
    path = _write(tmp_path / "dev.json", json.dumps({"text": "浙商银行叶老桂", "label": {
        "company": {"浙商银行": [[0, 3]]}, "name": {"叶老桂": [[4, 6]]}}}, ensure_ascii=False) + "\n")
    (record,) = data.load_cluener(path, CLUENER_TYPES)
    assert record["entities"] == [(0, 3, "company"), (4, 6, "name")]
    for label, message in [({"name": {"叶老桂": [[3, 5]]}}, "does not spell"),
                           ({"name": {"叶老桂": [[4, 7]]}}, "does not spell"),
                           ({"person": {"叶老桂": [[4, 6]]}}, "entity type 'person' is not one of"),
                           ({"name": ["叶老桂"]}, "label.name: expected dict")]:
        _write(path, '{"text": "x"}\n' + json.dumps({"text": "浙商银行叶老桂", "label": label}, ensure_ascii=False))
        with pytest.raises(data.DataError, match=rf"dev.json:2: .*{message}"):
            data.load_cluener(path, CLUENER_TYPES)
