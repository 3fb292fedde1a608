"""scripts/evaluate.py on the real dev files: gold as prediction gives 100, and known perturbations give
the value worked out here independently of clue.metrics."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clue import evaluate

REPO = Path(__file__).resolve().parents[1]
CLASSIFICATION = ("afqmc", "tnews", "iflytek", "ocnli", "cluewsc2020", "csl")


def last_line(capsys, *argv):
    assert evaluate.main([str(a) for a in argv]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def json_lines(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").split("\n") if line.strip()]


def write_lines(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("task", CLASSIFICATION)
def test_gold_as_prediction_is_100(capsys, clue_data_dir, task):
    dev = clue_data_dir / task / "dev.json"
    assert last_line(capsys, task, dev, dev) == "accuracy: 100.0000"


def test_script_prints_metric_last(clue_data_dir):
    dev = clue_data_dir / "csl" / "dev.json"
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "evaluate.py"), "csl", str(dev), str(dev)],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "accuracy: 100.0000"


def test_flipped_labels_by_position(tmp_path, capsys, clue_data_dir):
    # tnews dev has no ids: predictions without ids line up by position; every 7th label is changed
    gold = json_lines(clue_data_dir / "tnews" / "dev.json")
    preds = [{"label": ("100" if g["label"] != "100" else "101") if i % 7 == 0 else g["label"]}
             for i, g in enumerate(gold)]
    wrong = len(range(0, len(gold), 7))
    expected = 100 * (len(gold) - wrong) / len(gold)
    assert last_line(capsys, "tnews", write_lines(tmp_path / "p.json", preds),
                     clue_data_dir / "tnews" / "dev.json") == f"accuracy: {expected:.4f}"


def test_ids_shuffled_missing_and_nli_dash_rows(tmp_path, capsys, clue_data_dir):
    # ocnli dev has ids and 50 "-" rows (not scored); predictions in reverse order, 3 dropped, 10 flipped
    gold = json_lines(clue_data_dir / "ocnli" / "dev.json")
    scored = [g for g in gold if g["label"] != "-"]
    flip = {g["id"] for g in scored[:10]}
    drop = {g["id"] for g in scored[10:13]}
    other = {"entailment": "neutral", "neutral": "contradiction", "contradiction": "entailment", "-": "neutral"}
    preds = [{"id": g["id"], "label": other[g["label"]] if g["id"] in flip else g["label"]}
             for g in reversed(gold) if g["id"] not in drop]
    expected = 100 * (len(scored) - 13) / len(scored)
    assert last_line(capsys, "ocnli", write_lines(tmp_path / "p.json", preds),
                     clue_data_dir / "ocnli" / "dev.json") == f"accuracy: {expected:.4f}"
    assert evaluate.main(["ocnli", str(tmp_path / "p.json"), str(clue_data_dir / "ocnli" / "dev.json")]) == 0
    out = capsys.readouterr().out
    assert "50 gold rows with a label outside the label set are not scored" in out
    assert "3 of 2950 gold examples have no prediction" in out


def test_duplicate_prediction_id_is_an_error(tmp_path, capsys, clue_data_dir):
    gold = json_lines(clue_data_dir / "csl" / "dev.json")
    preds = [{"id": g["id"], "label": g["label"]} for g in gold] + [{"id": gold[0]["id"], "label": "0"}]
    assert evaluate.main(["csl", str(write_lines(tmp_path / "p.json", preds)),
                          str(clue_data_dir / "csl" / "dev.json")]) == 1
    assert f"prediction id {gold[0]['id']!r} appears more than once" in capsys.readouterr().out
# -- cmrc2018: EM and F1 ----------------------------------------------------------------------------------
def cmrc_questions(path):
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    return [qa for article in doc["data"] for p in article["paragraphs"] for qa in p["qas"]]


def test_cmrc2018_gold_and_perturbations(tmp_path, capsys, clue_data_dir):
    dev = clue_data_dir / "cmrc2018" / "cmrc2018_dev.json"
    assert evaluate.main(["cmrc2018", str(dev), str(dev)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2:] == ["cmrc2018_f1: 100.0000", "cmrc2018_em: 100.0000"]

    questions = cmrc_questions(dev)
    n = len(questions)
    preds = {qa["id"]: qa["answers"][0]["text"] for qa in questions}
    # 1) empty answers for 20 questions: EM = F1 = (n - 20) / n
    for qa in questions[:20]:
        preds[qa["id"]] = ""
    # 2) one question whose gold answers are all the same run of >= 3 Chinese characters: drop its last
    #    character. Chinese is scored per character, so P = 1, R = (L-1)/L, F1 = 2(L-1)/(2L-1), EM = 0.
    qa = next(q for q in questions[20:] if len({a["text"] for a in q["answers"]}) == 1
              and re.fullmatch(r"[\u4e00-\u9fff]{3,}", q["answers"][0]["text"]))
    answer = qa["answers"][0]["text"]
    preds[qa["id"]] = answer[:-1]
    L = len(answer)
    em = 100 * (n - 21) / n
    f1 = 100 * (n - 21 + 2 * (L - 1) / (2 * L - 1)) / n
    path = tmp_path / "cmrc2018_predict.json"
    path.write_text(json.dumps(preds, ensure_ascii=False), encoding="utf-8")
    assert evaluate.main(["cmrc2018", str(path), str(dev)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-2:] == [f"cmrc2018_f1: {f1:.4f}", f"cmrc2018_em: {em:.4f}"]


# -- cluener: macro F1 over the ten types -----------------------------------------------------------------
def test_cluener_gold_and_one_entity_dropped(tmp_path, capsys, clue_data_dir):
    dev = clue_data_dir / "cluener" / "dev.json"
    assert last_line(capsys, "cluener", dev, dev) == "cluener_f1: 100.0000"
    gold = json_lines(dev)
    # entity strings of type "book", counted once per sentence (the official rule)
    n_book = sum(len(g["label"].get("book", {})) for g in gold)
    line = next(i for i, g in enumerate(gold) if g["label"].get("book"))
    preds = [{"id": i, "label": json.loads(json.dumps(g["label"]))} for i, g in enumerate(gold)]
    dropped = next(iter(preds[line]["label"]["book"]))
    del preds[line]["label"]["book"][dropped]
    # book: TP n-1, FP 0, FN 1 -> F1 = 2(n-1) / (2(n-1) + 1); the nine other types stay at 1
    book_f1 = 2 * (n_book - 1) / (2 * (n_book - 1) + 1)
    types = {t for g in gold for t in g["label"]}
    assert len(types) == 10
    expected = 100 * (9 + book_f1) / 10
    assert last_line(capsys, "cluener", write_lines(tmp_path / "p.json", preds), dev) == f"cluener_f1: {expected:.4f}"


# -- c3 and chid: accuracy over questions / blanks --------------------------------------------------------
def test_c3_gold_and_perturbation(tmp_path, capsys, clue_data_dir):
    d, m = clue_data_dir / "c3" / "c3-d-dev.json", clue_data_dir / "c3" / "c3-m-dev.json"
    docs = json.loads(d.read_text(encoding="utf-8")) + json.loads(m.read_text(encoding="utf-8"))
    questions = [q for doc in docs for q in doc[1]]
    labels = [q["choice"].index(q["answer"]) for q in questions]
    # the d- file as predictions against itself
    assert last_line(capsys, "c3", d, d) == "accuracy: 100.0000"
    # leaderboard lines with ids = position across d- then m-; every 5th answer moved to another choice
    preds = [{"id": i, "label": str((y + 1) % len(q["choice"]) if i % 5 == 0 else y)}
             for i, (q, y) in enumerate(zip(questions, labels))]
    expected = 100 * (len(labels) - len(range(0, len(labels), 5))) / len(labels)
    assert last_line(capsys, "c3", write_lines(tmp_path / "p.json", preds), d, m) == f"accuracy: {expected:.4f}"


def test_chid_gold_and_perturbation(tmp_path, capsys):
    from chid_fixture import make_chid

    folder = tmp_path / "chid"
    answers = make_chid(folder)["dev"][1]
    assert last_line(capsys, "chid", folder / "dev_answer.json", folder / "dev.json") == "accuracy: 100.0000"
    wrong = sorted(answers)[:3]
    preds = {k: ((v + 1) % 10 if k in wrong else v) for k, v in answers.items()}
    (tmp_path / "chid11_predict.json").write_text(json.dumps(preds))
    expected = 100 * (len(answers) - 3) / len(answers)
    assert last_line(capsys, "chid", tmp_path / "chid11_predict.json",
                     folder / "dev_answer.json") == f"accuracy: {expected:.4f}"


def test_a_key_given_twice_is_an_error(tmp_path, capsys):
    path = tmp_path / "chid11_predict.json"
    path.write_text('{"#idiom000001#": 1, "#idiom000002#": 3, "#idiom000001#": 2}')
    assert evaluate.main(["chid", str(path), str(path)]) == 1
    assert "given more than once: '#idiom000001#'" in capsys.readouterr().out
