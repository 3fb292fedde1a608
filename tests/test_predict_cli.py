"""clue-predict (issue 18): a run's model, loaded from its output folder, answers a test file exactly as the
run's leaderboard file does, from the task's own files (JSON lines, cmrc2018's and c3's JSON) or plain text;
a bad input line is one error line naming it, exit 1, and no output file.

The runs are test_run_all's run_clue run (small_clue, shared by the session) and one cluener run on its data.
"""

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import small_clue
from clue import predict_cli, registry

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tasks"))
import cluener  # noqa: E402


@pytest.fixture(scope="session")
def clue11(tmp_path_factory, clue_data_dir):
    return small_clue.clue11_run(tmp_path_factory, clue_data_dir)


@pytest.fixture(scope="module")
def runs(clue11, tmp_path_factory):
    """{task: (its first test file, that file's leaderboard file, the run's output folder)}."""
    data, out, code = clue11
    assert code == 0
    ner = tmp_path_factory.mktemp("cluener")
    flags = small_clue.RUN_FLAGS[:small_clue.RUN_FLAGS.index("--quiet")] + ["--verbose", "0"]
    with contextlib.redirect_stdout(io.StringIO()):
        cluener.main([*flags, "--data-dir", str(data), "--output-dir", str(ner)])
    found = {}
    for name in (*small_clue.CLUE11_TASKS, "cluener"):
        folder = ner if name == "cluener" else out
        (test, board), *_ = registry.get(name).test_outputs(data / name)
        found[name] = test[0], folder / "results" / board, folder
    return found


def leaderboard(task, path):
    """[(id, answer)] of a leaderboard file."""
    text = path.read_text(encoding="utf-8")
    if task.style == "object":
        return list(json.loads(text).items())
    return [(row["id"], row["label"]) for row in map(json.loads, text.splitlines())]


def as_leaderboard_answer(task, found):
    """A clue-predict line's answer as the task's leaderboard file writes it."""
    if task.answer == "text":
        return found["answer"]
    if task.answer == "entities":   # CLUENER's {type: {entity: [[first, last], ...]}}
        table = {}
        for entity in found["entities"]:
            table.setdefault(entity["label"], {}).setdefault(entity["text"], []).append([entity["start"], entity["end"]])
        return table
    if task.head == "choices":
        return str(found["index"]) if task.style == "lines" else found["index"]
    return found["label"]


def predicted(argv):
    """The JSON lines ``predict_cli.main(argv)`` writes to stdout."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        predict_cli.main([*argv, "--quiet"])
    return [json.loads(line) for line in printed.getvalue().splitlines()]


@pytest.mark.parametrize("name", ["tnews", "afqmc", "cmrc2018", "cluener", "c3", "chid"])
def test_a_test_file_gets_the_answers_of_the_runs_leaderboard_file(name, runs, tmp_path):
    task = registry.get(name)
    test, board, out = runs[name]
    output = tmp_path / "answers.jsonl"
    predict_cli.main([name, "--run", str(out), "--input", str(test), "--output", str(output), "--quiet"])
    found = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    expected = leaderboard(task, board)
    assert len(found) == len(expected) > 0
    assert [(f["id"], as_leaderboard_answer(task, f)) for f in found] == expected
    if name == "cmrc2018":   # the offsets are those of the answer in its context
        contexts = [r["context"] for r in task.read(test)]
        assert all(c[f["start"]:f["end"] + 1] == f["answer"] for c, f in zip(contexts, found) if f["answer"])
    if name == "chid":       # the chosen candidate's text and the candidates' probabilities beside it
        records = task.read(test)
        assert all(f["text"] == r["candidates"][f["index"]] and len(f["probabilities"]) == 10
                   for r, f in zip(records, found))


def test_plain_text_lines_get_the_answers_of_the_records_they_hold(runs, tmp_path, monkeypatch):
    tnews, cmrc2018 = registry.get("tnews"), registry.get("cmrc2018")
    test, board, out = runs["tnews"]
    titles = "".join(r["sentence"] + "\n" for r in tnews.read(test)).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(titles), encoding="utf-8"))
    found = predicted(["tnews", "--run", str(out), "--top-k", "3"])   # stdin to stdout
    assert [f["label"] for f in found] == [label for _, label in leaderboard(tnews, board)]
    assert all(len(f["top"]) == 3 and f["top"][0] == [f["label"], f["probability"]] for f in found)

    test, board, out = runs["cmrc2018"]
    questions = tmp_path / "questions.txt"
    questions.write_text("".join(f"{r['question']}\t{r['context']}\n" for r in cmrc2018.read(test)), encoding="utf-8")
    found = predicted(["cmrc2018", "--run", str(out), "--input", str(questions)])
    assert [f["answer"] for f in found] == [answer for _, answer in leaderboard(cmrc2018, board)]


def test_a_bad_record_is_one_error_line_naming_its_file_and_line(runs, tmp_path):
    _, _, out = runs["afqmc"]
    bad = tmp_path / "pairs.json"
    bad.write_text('{"sentence1": "花呗怎么还款", "sentence2": "花呗如何还钱"}\n\n{"sentence1": "只有一句"}\n',
                   encoding="utf-8")
    with pytest.raises(SystemExit) as stop:   # the reader's own check (clue.data), line numbers as the file's
        predict_cli.main(["afqmc", "--run", str(out), "--input", str(bad), "--output", str(tmp_path / "o.jsonl")])
    assert stop.value.code == f"error: {bad}:3: missing field 'sentence2' (has sentence1)"
    assert sorted(tmp_path.iterdir()) == [bad]


def test_a_bad_line_past_the_first_chunk_ends_the_command_with_nothing_written(runs, tmp_path):
    _, _, out = runs["afqmc"]
    pairs = tmp_path / "pairs.txt"   # a chunk is 50 batches: with --batch-size 1 the first 50 lines are written first
    pairs.write_text("花呗怎么还款\t花呗如何还钱\n" * 60 + "只有一句\n", encoding="utf-8")
    output = tmp_path / "answers.jsonl"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "predict.py"), "afqmc", "--run", str(out),
                           "--input", str(pairs), "--output", str(output), "--batch-size", "1"],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"error: {pairs}:61: afqmc takes 2 tab-separated texts "
                                        f"(sentence1<TAB>sentence2) a line, got 1"]
    assert sorted(tmp_path.iterdir()) == [pairs]


def test_input_is_read_a_chunk_at_a_time_each_written_before_the_next_is_read(runs, monkeypatch):
    _, _, out = runs["tnews"]
    printed = io.StringIO()

    def titles():   # stdin's lines: the 51st is read only once the first chunk's 50 answers are out
        for i in range(60):
            assert i != 50 or printed.getvalue().count("\n") == 50, "line 51 read before chunk 1 was written"
            yield f"标题{i}\n".encode()

    monkeypatch.setattr(sys, "stdin", type("Stdin", (), {"buffer": titles()}))
    with contextlib.redirect_stdout(printed):
        predict_cli.main(["tnews", "--run", str(out), "--batch-size", "1", "--quiet"])
    assert printed.getvalue().count("\n") == 60
