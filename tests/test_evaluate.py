"""scripts/evaluate.py on the real dev files: gold as prediction gives 100, and known perturbations give
the value worked out here independently of clue.metrics."""

import json
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
    out = capsys.readouterr().out
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
