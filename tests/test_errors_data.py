"""Bad or suspicious data is never silently wrong and never a traceback (issue 19): each case is one
``error: <file>:<line>: ...`` and exit status 1, found while the files are read, before any training; where
real CLUE files hold the case, a warning counting it and naming the first place."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clue import cli, data, evaluate, registry
from clue.registry import CLUENER_TYPES

REPO = Path(__file__).resolve().parents[1]


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="")
    return path


def json_lines(path, rows):
    return write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def line_of(path, needle):
    return next(i for i, text in enumerate(path.read_text(encoding="utf-8").split("\n"), 1) if needle in text)


def start_error(tmp_path, task):
    """The one line a task script ends with when ``cli.start`` (which reads and checks every file before
    training) stops on the data in tmp_path/data/<task>; None when it starts."""
    argv = ["--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "out"), "--model", "tiny"]

    def main():
        cli.start(task, argv)
        sys.exit(0)   # every file read and checked: training would start here

    with pytest.raises(SystemExit) as stopped:
        cli.run(main)
    code = stopped.value.code
    if code == 0:
        return None
    assert isinstance(code, str) and code.startswith("error: ") and "\n" not in code, code   # exit status 1
    return code


# -- C3 ----------------------------------------------------------------------------------------------------
def question(text, choices, answer=None):
    q = {"question": text, "choice": choices}
    return q if answer is None else {**q, "answer": answer}


def c3_folder(tmp_path, train_m=None, test=None):
    """A c3 folder: d-/m- train and dev, a test1.1 file; ``train_m`` and ``test`` replace those questions."""
    folder = tmp_path / "data" / "c3"

    def doc(n, questions):
        return [[f"男：第{n}句", "女：好"], questions, f"{n}-1"]

    good = [question(f"问题{i}？", ["一", "二", "三"], "二") for i in range(3)]
    for name, questions in [("d-train.json", good), ("m-train.json", train_m or good),
                            ("d-dev.json", good), ("m-dev.json", good)]:
        write(folder / name, json.dumps([doc(i, [q]) for i, q in enumerate(questions)], ensure_ascii=False,
                                        indent=1))
    tests = test or [question("测试？", ["甲", "乙"])]
    write(folder / "test1.1.json", json.dumps([[["x"], [{**q, "id": i}], f"t{i}"] for i, q in enumerate(tests)],
                                              ensure_ascii=False, indent=1))
    return folder


def test_c3_train_question_without_answer_is_an_error_not_choice_0(tmp_path):
    c3_folder(tmp_path)
    assert start_error(tmp_path, "c3") is None   # the folder as written is fine
    unanswered = question("没答案？", ["一", "二"])
    folder = c3_folder(tmp_path, train_m=[question("问题0？", ["一", "二"], "二"), unanswered])
    line = line_of(folder / "m-train.json", "没答案")
    assert re.fullmatch(rf"error: {re.escape(str(folder / 'm-train.json'))}:{line}: 1 of 5 c3 train records "
                        rf"have no 'label' \(the first is here\); a train file must be labelled",
                        start_error(tmp_path, "c3"))


def test_classification_train_or_dev_rows_without_label_are_an_error(tmp_path):
    folder = tmp_path / "data" / "afqmc"
    rows = [{"sentence1": "甲", "sentence2": "乙", "label": "1"}] * 3
    json_lines(folder / "train.json", rows[:1] + [{"sentence1": "甲", "sentence2": "乙"}] + rows[1:])
    json_lines(folder / "dev.json", rows)
    json_lines(folder / "test.json", [{"id": 0, "sentence1": "甲", "sentence2": "乙"}])
    assert re.search(r"train\.json:2: 1 of 4 afqmc train records have no 'label'", start_error(tmp_path, "afqmc"))
    json_lines(folder / "train.json", rows)
    json_lines(folder / "dev.json", [{"id": i, "sentence1": "甲", "sentence2": "乙"} for i in range(3)])  # test
    assert re.search(r"dev\.json:1: 3 of 3 afqmc dev records have no 'label'", start_error(tmp_path, "afqmc"))


def test_unlabelled_train_records_of_the_span_tasks_are_an_error(tmp_path):
    cluener = json_lines(tmp_path / "cluener" / "train.json", [{"text": "浙商银行", "label": {}}, {"text": "叶老桂"}])
    chid = json_lines(tmp_path / "chid" / "train.json", [{"candidates": [f"成语{i}" for i in range(10)],
                                                         "content": ["甲#idiom000000#"]}])   # no train_answer.json
    cmrc = cmrc_file(tmp_path / "cmrc2018" / "train.json", "北京是首都。", [None])
    for task, path, where in [("cluener", cluener, 2), ("chid", chid, 1), ("cmrc2018", cmrc, line_of(cmrc, "Q_0"))]:
        records = registry.get(task).read(path)
        with pytest.raises(data.DataError, match=rf"train\.json:{where}: 1 of {len(records)} {task} train records "
                                                 rf"have no '(label|answers)'"):
            registry.get(task).check("train", [path], records)


def test_c3_more_than_4_choices_in_train_is_an_error_in_test_a_counted_warning(tmp_path, capsys):
    five = question("五个？", ["一", "二", "三", "四", "五"], "五")
    folder = c3_folder(tmp_path, train_m=[question("问题0？", ["一", "二"], "二"), five])
    line = line_of(folder / "m-train.json", "五个")
    assert re.search(rf"m-train\.json:{line}: 1 of 5 train questions have more than 4 choices",
                     start_error(tmp_path, "c3"))
    folder = c3_folder(tmp_path, test=[question("好？", ["甲", "乙"]), five, five])
    assert start_error(tmp_path, "c3") is None   # CLUE's test1.1 has such questions: they are predicted
    warning = [w for w in capsys.readouterr().err.splitlines() if "more than 4 choices" in w]
    line = line_of(folder / "test1.1.json", "五个")
    assert warning == [f"warning: {folder / 'test1.1.json'}:{line}: 2 of 3 test questions have more than 4 "
                       f"choices (the first is here); only their first 4 are scored"]


@pytest.mark.parametrize("choices, message", [([], "0 choices, a question needs at least 2"),
                                              (["一"], "1 choice, a question needs at least 2"),
                                              (["一", 2], r"choice\[1\]: expected str, got int"),
                                              ("一二", "choice: expected list, got str")])
def test_c3_question_without_two_string_choices_is_an_error(tmp_path, choices, message):
    path = write(tmp_path / "d-dev.json", json.dumps([[["x"], [question("问？", choices)], "1-1"]], indent=1,
                                                     ensure_ascii=False))
    with pytest.raises(data.DataError, match=rf"d-dev\.json:{line_of(path, '问？')}: document \[0\] question "
                                             rf"\[0\]:? ?{message}"):
        data.load_c3(path)


def test_real_c3_files_have_2_to_4_choices_except_6_test11_questions(clue_data_dir, capsys):
    c3 = registry.get("c3")
    for split, files in c3.find_files(clue_data_dir / "c3").items():
        c3.check(split, files, c3.read(files))   # train, dev: no error
    err = capsys.readouterr().err
    assert re.search(r"test1\.1\.json:7531: 6 of 1625 test questions have more than 4 choices", err), err


# -- CMRC2018 --------------------------------------------------------------------------------------------
def cmrc_file(path, context, answers):
    """One paragraph, a question per answer (None: a question without answers)."""
    qas = [{"id": f"Q_{i}", "question": f"问{i}？", "answers": [a] if a else []} for i, a in enumerate(answers)]
    return write(path, json.dumps({"version": "v1.0", "data": [{"id": "A_1", "title": "t", "paragraphs": [
        {"id": "P_1", "context": context, "qas": qas}]}]}, ensure_ascii=False, indent=2))


def test_cmrc2018_train_answer_not_in_its_context_is_an_error(tmp_path):
    context = "北京是中国的首都。上海是港口。"
    answers = [{"text": "北京", "answer_start": 0}, {"text": "上海", "answer_start": 11}]   # off by two: found
    folder = tmp_path / "data" / "cmrc2018"
    cmrc_file(folder / "cmrc2018_train.json", context, answers)
    cmrc_file(folder / "cmrc2018_dev.json", context, answers + [{"text": "一个港口", "answer_start": -1}])
    cmrc_file(folder / "cmrc2018_test.json", context, [{"text": "FAKE_ANSWER_1", "answer_start": -1}])
    assert start_error(tmp_path, "cmrc2018") is None   # a dev answer elsewhere is only compared as text
    path = cmrc_file(folder / "cmrc2018_train.json", context, answers + [{"text": "广州", "answer_start": 3}])
    assert re.search(rf"cmrc2018_train\.json:{line_of(path, 'Q_2')}: 1 of 3 train answers are not in their "
                     rf"context", start_error(tmp_path, "cmrc2018"))


def test_real_cmrc2018_train_answers_are_all_in_their_contexts(clue_data_dir):
    cmrc = registry.get("cmrc2018")
    files = cmrc.find_files(clue_data_dir / "cmrc2018")["train"]
    cmrc.check("train", files, cmrc.read(files))   # 10,121 at their offset, 21 elsewhere, none missing


def test_cmrc2018_empty_context_is_an_error_when_read(tmp_path):
    path = cmrc_file(tmp_path / "cmrc2018_test.json", "  ", [{"text": "x", "answer_start": -1}])
    with pytest.raises(data.DataError, match=rf"cmrc2018_test\.json:{line_of(path, 'P_1')}: "
                                             rf"data\[0\]\.paragraphs\[0\]\.context is empty"):
        data.load_cmrc2018(path)


# -- wrong types -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("task, row, message", [
    ("afqmc", {"sentence1": None, "sentence2": "乙", "label": "0"}, "sentence1: expected str, got NoneType"),
    ("afqmc", {"sentence1": "甲", "sentence2": 3, "label": "0"}, "sentence2: expected str, got int"),
    ("tnews", {"sentence": ["新闻"], "label": "100"}, "sentence: expected str, got list"),
    ("csl", {"abst": "摘要", "keyword": "词", "label": "1"}, "keyword: expected list, got str"),
    ("csl", {"abst": "摘要", "keyword": ["词", None], "label": "1"}, r"keyword\[1\]: expected str, got NoneType"),
    ("cluewsc2020", {"text": "他", "target": None, "label": "true"}, "target: expected dict, got NoneType"),
])
def test_a_text_field_of_the_wrong_type_is_an_error_naming_line_and_field(tmp_path, task, row, message):
    good = {"afqmc": {"sentence1": "甲", "sentence2": "乙", "label": "0"},
            "tnews": {"sentence": "新闻", "label": "100"},
            "csl": {"abst": "摘要", "keyword": ["词"], "label": "1"},
            "cluewsc2020": {"text": "他", "target": {}, "label": "true"}}[task]
    path = json_lines(tmp_path / "train.json", [good, row])
    with pytest.raises(data.DataError, match=rf"train\.json:2: {message}"):
        registry.get(task).read(path)


@pytest.mark.parametrize("target, message", [
    ({"span1_index": 0, "span1_text": "小明", "span2_index": 3}, "missing field 'span2_text'"),
    ({"span1_index": 0, "span1_text": "小明", "span2_index": "3", "span2_text": "他"}, "span2_index '3' of the text"),
    ({"span1_index": 1, "span1_text": "小明", "span2_index": 3, "span2_text": "他"}, "'小明' is not at span1_index 1"),
])
def test_cluewsc2020_target_spans_are_checked_when_read(tmp_path, target, message):
    good = {"text": "小明说他累了", "target": {"span1_index": 0, "span1_text": "小明", "span2_index": 3,
                                        "span2_text": "他"}, "label": "true"}
    path = json_lines(tmp_path / "dev.json", [good, {**good, "target": target}])
    with pytest.raises(data.DataError, match=rf"dev\.json:2: .*{message}"):
        registry.get("cluewsc2020").read(path)


def test_real_cluewsc2020_spans_are_at_their_indices(clue_data_dir):
    wsc = registry.get("cluewsc2020")
    found = {split: len(wsc.read(files)) for split, files in wsc.find_files(clue_data_dir / "cluewsc2020").items()}
    assert found == {"train": 1244, "dev": 304, "test": 2574, "test1.0": 290}


def test_cluener_text_not_a_string_is_an_error(tmp_path):
    path = json_lines(tmp_path / "dev.json", [{"text": "浙商银行", "label": {}}, {"text": 12, "label": {}}])
    with pytest.raises(data.DataError, match=r"dev\.json:2: text: expected str, got int"):
        data.load_cluener(path, CLUENER_TYPES)


def test_cmrc2018_answer_start_as_a_string_is_an_error(tmp_path):
    path = cmrc_file(tmp_path / "cmrc2018_train.json", "北京是首都。", [{"text": "北京", "answer_start": "0"}])
    with pytest.raises(data.DataError, match=rf"cmrc2018_train\.json:{line_of(path, 'Q_0')}: .*answers\[0\]\."
                                             rf"answer_start: expected int, got str '0'"):
        data.load_cmrc2018(path)


def test_chid_line_with_11_candidates_is_an_error(tmp_path):
    lines = [{"candidates": [f"成语{i}" for i in range(n)], "content": [f"甲#idiom00000{k}#乙"]}
             for k, n in enumerate((10, 11))]
    json_lines(tmp_path / "train.json", lines)
    write(tmp_path / "train_answer.json", json.dumps({"#idiom000000#": 1, "#idiom000001#": 2}))
    with pytest.raises(data.DataError, match=r"train\.json:2: candidates: 11 idioms, expected 10"):
        registry.get("chid").read(tmp_path / "train.json")


# -- evaluate --------------------------------------------------------------------------------------------
def run_evaluate(capsys, *argv):
    """(exit status, printed lines) of ``clue-evaluate``."""
    status = evaluate.main([str(a) for a in argv])
    return status, capsys.readouterr().out.strip().splitlines()


def classification_gold(tmp_path):
    return json_lines(tmp_path / "dev.json", [{"id": i, "sentence1": "甲", "sentence2": "乙", "label": str(i % 2)}
                                              for i in range(4)])


def test_evaluate_prediction_file_of_the_wrong_shape_is_one_error_line(tmp_path, capsys):
    gold = classification_gold(tmp_path)
    cases = [('[{"id": 0, "label": "1"}]\n', r"p\.json:1: expected a JSON object, got list"),
             ('{"id": 0, "label": "1"}\n{"id": 1, "labels": "1"}\n', r"p\.json:2: missing field 'label'"),
             ('{"id": 0, "label": "1"}\n{"id": 1, "label": ["1"]}\n', r"p\.json:2: the answer \['1'\] is not a "
                                                                     r"label")]
    for text, message in cases:
        status, printed = run_evaluate(capsys, "afqmc", write(tmp_path / "p.json", text), gold)
        assert status == 1 and len(printed) == 1 and re.fullmatch(rf"error: .*{message}.*", printed[0]), printed


def cluener_gold(folder):
    return json_lines(folder / "dev.json", [{"id": i, "text": "浙商银行", "label": {}} for i in range(2)])


def cmrc2018_gold(folder):
    return cmrc_file(folder / "dev.json", "北京是首都。", [{"text": "北京", "answer_start": 0}] * 2)


def chid_gold(folder):
    write(folder / "dev_answer.json", '{"#idiom000000#": 3}')
    line = {"candidates": [f"成语{i}" for i in range(10)], "content": ["甲#idiom000000#"]}
    return json_lines(folder / "dev.json", [line])


@pytest.mark.parametrize("gold, text, message", [
    (cluener_gold, '{"id": 0, "label": {}}\n{"id": 1, "label": ["浙商银行"]}\n', r"p\.json:2: .* is not entities"),
    (cluener_gold, '{"id": 0, "label": {"company": {"浙商银行": [[0]]}}}\n', r"p\.json:1: .* is not entities"),
    (cmrc2018_gold, '{\n"Q_0": "北京",\n"Q_1": 5\n}', r"p\.json:3: the answer 5 is not an answer text"),
    (chid_gold, '{"#idiom000000#": "3"}', r"p\.json:1: the answer '3' is not a candidate index"),
])
def test_evaluate_answers_of_the_wrong_type_are_one_error_line(tmp_path, capsys, gold, text, message):
    task = gold.__name__.removesuffix("_gold")
    status, printed = run_evaluate(capsys, task, write(tmp_path / "p.json", text), gold(tmp_path))
    assert status == 1 and len(printed) == 1 and re.fullmatch(rf"error: .*{message}.*", printed[0]), printed


def test_evaluate_without_a_single_matching_prediction_exits_1(tmp_path, capsys):
    gold = classification_gold(tmp_path)
    preds = json_lines(tmp_path / "p.json", [{"id": i + 100, "label": "0"} for i in range(4)])
    status, printed = run_evaluate(capsys, "afqmc", preds, gold)
    assert status == 1 and printed == [f"error: {preds}: none of the 4 gold examples of {gold} has a prediction "
                                       f"(gold ids such as 0; prediction ids such as 100)"]
    json_lines(preds, [{"id": 0, "label": "0"}])   # some missing: counted, scored as wrong
    status, printed = run_evaluate(capsys, "afqmc", preds, gold)
    assert status == 0 and printed[0].startswith("warning: 3 of 4 gold examples have no prediction")
    assert printed[-1] == "accuracy: 25.0000"


def test_evaluate_against_an_unlabelled_file_says_so(tmp_path, capsys):
    test = c3_folder(tmp_path) / "test1.1.json"   # c3 and chid gold files are read by the task's reader
    preds = json_lines(tmp_path / "p.json", [{"id": 0, "label": "1"}])
    status, printed = run_evaluate(capsys, "c3", preds, test)
    assert status == 1 and printed == [f"error: {test}:{line_of(test, '测试？')}: 1 of 1 c3 dev records have no "
                                       f"'label' (the first is here); a dev file must be labelled"]


def test_evaluate_script_ends_a_bad_prediction_file_with_one_line(tmp_path):
    gold = classification_gold(tmp_path)
    preds = write(tmp_path / "p.json", '{"id": 0, "label": {"x": 1}}\n')
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "evaluate.py"), "afqmc", str(preds), str(gold)],
                          capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr == "", done.stderr
    assert done.stdout.splitlines() == [f"error: {preds}:1: the answer {{'x': 1}} is not a label (a string or an "
                                        f"integer)"]
