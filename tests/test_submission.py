"""Submission files (atomic writes, the line-by-line checker), the task registry and accuracy."""

import json
import os

import pytest

from clue import metrics, registry, submission
from clue.data import load_labels


def test_write_labels_format(tmp_path):
    path = submission.write_labels(tmp_path / "x" / "afqmc_predict.json", [7, 3, "a"], ["1", 0, "0"])
    assert path.read_text(encoding="utf-8").splitlines() == [
        '{"id": 7, "label": "1"}', '{"id": 3, "label": "0"}', '{"id": "a", "label": "0"}']
    submission.write_labels(tmp_path / "t.json", [1], ["中文"])
    assert (tmp_path / "t.json").read_text(encoding="utf-8") == '{"id": 1, "label": "中文"}\n'
    with pytest.raises(ValueError, match="2 ids but 1 labels"):
        submission.write_labels(tmp_path / "bad.json", [1, 2], ["0"])


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "csl_predict.json"
    submission.write_labels(path, [0], ["1"])

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        submission.write_labels(path, range(1000), ["0"] * 1000)
    assert path.read_text() == '{"id": 0, "label": "1"}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["csl_predict.json"]   # no temporary file left


def test_write_object(tmp_path):
    path = submission.write_object(tmp_path / "cmrc2018_predict.json", {"TEST_0_QUERY_0": "答案"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"TEST_0_QUERY_0": "答案"}


def write(path, lines, end="\n"):
    path.write_text("\n".join(lines) + end, encoding="utf-8")
    return path


def test_check_labels_accepts_a_valid_file(tmp_path):
    path = write(tmp_path / "p.json", ['{"id": 5, "label": "0"}', '{"id": 2, "label": "1"}'])
    assert submission.check_labels(path, [5, 2], ("0", "1")) == []


@pytest.mark.parametrize("lines, end, problem", [
    (['{"id": 5, "label": "0"}'], "\n", "id 2 is missing"),
    (['{"id": 5, "label": "0"}', '{"id": 5, "label": "0"}', '{"id": 2, "label": "1"}'], "\n", "id 5 appears 2 times"),
    (['{"id": 2, "label": "0"}', '{"id": 5, "label": "1"}'], "\n", ":1: id 2 out of order (the test file has 5"),
    (['{"id": 5, "label": "7"}', '{"id": 2, "label": "1"}'], "\n", ":1: label '7' is not in the label set"),
    (['{"id": 5, "label": 0}', '{"id": 2, "label": "1"}'], "\n", ":1: label 0 is not a string"),
    (['{"id": 5, "label": "0"}', '{"id": 9, "label": "1"}'], "\n", ":2: id 9 is not in the test file"),
    (['{"id": 5, "label": "0"}', '{"id": 2, "lab'], "", ":2: not valid JSON"),
    (['{"id": 5, "label": "0"}', '{"id": 2, "label": "1"}'], "", "does not end with a newline"),
    (['{"id": 5, "label": "0", "p": 1}', '{"id": 2, "label": "1"}'], "\n", ":1: expected an object with exactly"),
])
def test_check_labels_names_each_problem(tmp_path, lines, end, problem):
    path = write(tmp_path / "p.json", lines, end)
    problems = submission.check_labels(path, [5, 2], ("0", "1"))
    assert any(problem in p for p in problems), problems


def test_check_labels_missing_file(tmp_path):
    assert submission.check_labels(tmp_path / "none.json", [1]) == [f"{tmp_path / 'none.json'}: missing"]


def test_registry_label_sets_match_the_label_files(clue_data_dir):
    assert tuple(load_labels(clue_data_dir / "tnews" / "labels.json")) == registry.get("tnews").labels
    assert tuple(load_labels(clue_data_dir / "iflytek" / "labels.json")) == registry.get("iflytek").labels
    assert len(registry.get("tnews").labels) == 15 and len(registry.get("iflytek").labels) == 119


def test_registry_finds_a_task_by_folder_or_script_name():
    assert registry.get("wsc") is registry.get("cluewsc2020")
    with pytest.raises(KeyError, match="unknown task 'mnli'"):
        registry.get("mnli")


def test_accuracy():
    assert metrics.accuracy(["a", "b", "c", "d"], ["a", "x", "c", "d"]) == 0.75
    assert metrics.METRICS["accuracy"] is metrics.accuracy
    with pytest.raises(ValueError, match="2 gold labels but 1 predictions"):
        metrics.accuracy([1, 2], [1])
