"""The seven classification scripts end to end on small real data, the demo, and the CLI's errors.

Each script runs in-process through its ``main(argv)`` (one TensorFlow start-up for all of them); the
resume test in test_training.py runs one as a real subprocess. Every output file is checked line by line
against its test file: each id once, in order, every label in the task's label set.
"""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import clue_layout
from clue import predictions, registry
from clue.data import load_json_lines
from clue.paths import MissingPathError
from clue.submission import check_labels

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tasks"))

SMOKE = ["--model", "tiny", "--epochs", "1", "--limit", "300", "--verbose", "0"]
# script -> the leaderboard files the layout's test files lead to
EXPECTED = {
    "afqmc": ["afqmc_predict.json"],
    "tnews": ["tnews11_predict.json", "tnews10_predict.json"],
    "iflytek": ["iflytek_predict.json"],
    "cmnli": ["cmnli_predict.json"],
    "ocnli": ["ocnli_50k_predict.json"],
    "wsc": ["cluewsc11_predict.json", "cluewsc10_predict.json"],
    "csl": ["csl_predict.json"],
}


@pytest.fixture(scope="module")
def layout(clue_data_dir, tmp_path_factory):
    return clue_layout.build(clue_data_dir, tmp_path_factory.mktemp("clue_data"))


@pytest.mark.parametrize("script", list(EXPECTED))
def test_task_writes_a_valid_submission(script, layout, tmp_path):
    task = registry.get(script)
    score = importlib.import_module(script).main(
        ["--data-dir", str(layout), "--output-dir", str(tmp_path), *SMOKE])
    assert 0.0 <= score <= 1.0
    written = sorted(p.name for p in (tmp_path / "results").iterdir())
    assert written == sorted(["dev", *EXPECTED[script], *(predictions.scores_path(n).name for n in EXPECTED[script])])
    # the dev predictions of the best weights, with their probabilities, score what training reported
    dev = predictions.dev_path(tmp_path / "results", task.name)
    assert predictions.load(predictions.scores_path(dev)).score(task.metric) == score
    for test_files, name in task.test_outputs(layout / task.name):
        ids = [r["id"] for r in task.read(test_files)][:300]
        assert check_labels(tmp_path / "results" / name, ids, task.labels) == []
    assert (tmp_path / "weights" / f"{task.name}.weights.h5").is_file()
    state = json.loads((tmp_path / "logs" / f"{task.name}.state.json").read_text())
    assert state["history"] == [score] and state["best_epoch"] == 1


def test_eval_predict_and_resume_reuse_the_run(layout, tmp_path):
    import afqmc

    args = ["--data-dir", str(layout), "--output-dir", str(tmp_path), *SMOKE]
    trained = afqmc.main(args)
    predicted = (tmp_path / "results" / "afqmc_predict.json").read_text()
    (tmp_path / "results" / "afqmc_predict.json").unlink()
    assert afqmc.main([*args, "--mode", "eval"]) == pytest.approx(trained)
    assert not (tmp_path / "results" / "afqmc_predict.json").exists()    # eval writes no submission
    assert afqmc.main([*args, "--mode", "predict"]) is None
    assert (tmp_path / "results" / "afqmc_predict.json").read_text() == predicted
    # --resume of a finished run trains no further epoch; with other flags it is refused
    assert afqmc.main([*args, "--resume"]) == trained
    assert len(json.loads((tmp_path / "logs" / "afqmc.state.json").read_text())["history"]) == 1
    with pytest.raises(ValueError, match="--lr 0.0005 -> 0.001"):
        afqmc.main([*args, "--resume", "--lr", "1e-3"])


def test_demo_runs_without_any_data(tmp_path, monkeypatch, capsys):
    import afqmc

    monkeypatch.delenv("CLUE_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)     # no ./datasets here
    score = afqmc.main(["--epochs", "2", "--limit", "600", "--verbose", "0"])
    out = capsys.readouterr().out
    assert "DEMO" in out and "--data-dir" in out and "model tiny" in out
    test = load_json_lines(tmp_path / "demo_data" / "afqmc" / "test.json")
    assert check_labels(tmp_path / "results" / "afqmc_predict.json", [r["id"] for r in test], ("0", "1")) == []
    assert len(json.loads((tmp_path / "logs" / "afqmc.state.json").read_text())["history"]) == 2
    assert 0.0 <= score <= 1.0


def test_missing_data_that_was_asked_for_is_an_error(tmp_path, monkeypatch):
    import afqmc

    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingPathError, match="no data folder for task 'afqmc'"):
        afqmc.main(["--data-dir", str(tmp_path / "nowhere"), "--model", "tiny"])
    monkeypatch.setenv("CLUE_DATA_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(MissingPathError, match=r"\$CLUE_DATA_DIR"):
        afqmc.main(["--model", "tiny"])
    assert not (tmp_path / "demo_data").exists()


def test_missing_train_file_fails_before_training(layout, tmp_path):
    import csl

    data = tmp_path / "data"
    (data / "csl").mkdir(parents=True)
    (data / "csl" / "dev.json").symlink_to(layout / "csl" / "dev.json")
    with pytest.raises(MissingPathError, match="no train file"):
        csl.main(["--data-dir", str(data), "--output-dir", str(tmp_path), *SMOKE])
    with pytest.raises(MissingPathError, match="train first"):
        csl.main(["--data-dir", str(data), "--output-dir", str(tmp_path), "--mode", "eval", *SMOKE])


def test_pretrained_preset_without_weights_names_what_to_set(layout, tmp_path, monkeypatch):
    import afqmc

    monkeypatch.delenv("CLUE_MODEL_DIR", raising=False)
    with pytest.raises(MissingPathError, match="--model-dir"):
        afqmc.main(["--data-dir", str(layout), "--output-dir", str(tmp_path)])   # default: bert-base


def test_help_lists_the_shared_flags():
    out = subprocess.run([sys.executable, str(REPO / "tasks" / "wsc.py"), "--help"], capture_output=True,
                         text=True, check=True).stdout
    for flag in ("--data-dir", "--model", "--model-dir", "--epochs", "--batch-size", "--maxlen", "--lr",
                 "--limit", "--output-dir", "--mode", "--seed", "--resume", "--optimizer", "--grad-accum",
                 "--mixed-precision", "--pooling", "--second-segment"):
        assert flag in out
    assert "cluewsc11_predict.json" in out and "(default: 30)" in out


def test_wsc_marks_both_spans():
    import wsc

    record = {"text": "杨百顺他爹是个卖豆腐的。别人叫他卖豆腐的老杨。",
              "target": {"span1_index": 0, "span1_text": "杨百顺", "span2_index": 15, "span2_text": "他"}}
    assert wsc.frame(record) == ("_杨百顺_他爹是个卖豆腐的。别人叫[他]卖豆腐的老杨。",)
    record["target"] = {"span1_index": 15, "span1_text": "他", "span2_index": 0, "span2_text": "杨百顺"}
    assert wsc.frame(record) == ("[杨百顺]他爹是个卖豆腐的。别人叫_他_卖豆腐的老杨。",)
    record["target"]["span1_index"], record["_line"] = 4, 12
    with pytest.raises(ValueError, match="line 12: span1_text '他' is not at span1_index 4"):
        wsc.frame(record)


def test_wsc_frames_adjacent_spans_on_the_real_dev_lines(clue_data_dir):
    import wsc

    # span2 starts exactly where span1 ends on dev lines 70 (高老师|他) and 111 (小蹄子|她), and nowhere else
    records = load_json_lines(clue_data_dir / "cluewsc2020" / "dev.json")
    adjacent = [r["_line"] for r in records
                if r["target"]["span1_index"] + len(r["target"]["span1_text"]) == r["target"]["span2_index"]]
    assert len(records) == 304 and adjacent == [70, 111]
    for line, (start, words, pronoun) in ((70, (52, "高老师", "他")), (111, (7, "小蹄子", "她"))):
        record = records[line - 1]
        text, end = record["text"], start + len(words) + len(pronoun)
        assert wsc.frame(record) == (text[:start] + f"_{words}_[{pronoun}]" + text[end:],)
        assert wsc.frame(record, "roformer_v2") == (text[:start] + f"[[{words}]][[{pronoun}]]" + text[end:],)


def test_wsc_token_ids_per_family(vocab_path):
    import wsc
    from clue.tokenizer import Tokenizer

    record = {"text": "杨百顺他爹叫他",
              "target": {"span1_index": 0, "span1_text": "杨百顺", "span2_index": 3, "span2_text": "他"}}
    # ids are the lines of the vocabulary file: [CLS] 101, [SEP] 102, "[" 138, "]" 140, "_" 142, 杨 3342,
    # 百 4636, 顺 7556, 他 800, 爹 4269, 叫 1373 (every mark a token of its own)
    vocab = {token: i for i, token in enumerate(vocab_path.read_text(encoding="utf-8").split("\n"))}
    assert [vocab[t] for t in ("[CLS]", "[SEP]", "[", "]", "_", "杨", "他")] == [101, 102, 138, 140, 142, 3342, 800]
    tokenizer = Tokenizer(str(vocab_path))
    bert = "[CLS] _ 杨 百 顺 _ [ 他 ] 爹 叫 他 [SEP]"                      # _杨百顺_[他]爹叫他
    roformer_v2 = "[CLS] [ [ 杨 百 顺 ] ] [ [ 他 ] ] 爹 叫 他 [SEP]"      # [[杨百顺]][[他]]爹叫他
    for family, tokens in (("bert", bert), ("roformer_v2", roformer_v2)):
        assert tokenizer.encode(wsc.frame(record, family)[0])[0] == [vocab[t] for t in tokens.split()]


def test_wsc_main_frames_by_the_encoder_family(layout, tmp_path, monkeypatch):
    import wsc
    from clue import classification

    class Framed(Exception):
        """Raised where the script encodes its first records: the framing it chose is all this test needs."""

    def encode(tokenizer, records, frame, *args):
        raise Framed(frame)

    preset = json.loads((REPO / "configs" / "tiny.json").read_text())
    (tmp_path / "tiny_v2.json").write_text(json.dumps(dict(preset, name="tiny-v2", family="roformer_v2")))
    monkeypatch.setattr(classification, "encode", encode)
    record = {"text": "他爹", "target": {"span1_index": 1, "span1_text": "爹", "span2_index": 0, "span2_text": "他"}}
    for model, framed in (("tiny", "[他]_爹_"), (str(tmp_path / "tiny_v2.json"), "[[他]][[爹]]")):
        with pytest.raises(Framed) as chosen:
            wsc.main(["--data-dir", str(layout), "--model", model, "--output-dir", str(tmp_path)])
        assert chosen.value.args[0](record) == (framed,)


def test_csl_joins_keywords():
    import csl

    assert csl.frame({"keyword": ["水声学", "FFT"], "abst": "摘要"}) == ("水声学；FFT", "摘要")


@pytest.mark.parametrize("second_segment", [0, 1])
def test_examples_encode_each_record_as_the_tokenizer_does(layout, second_segment):
    from clue import classification, cli

    run = cli.start("afqmc", ["--data-dir", str(layout), "--model", "tiny", "--maxlen", "24", "--limit", "50",
                              "--output-dir", str(layout / "out")])
    records = run.read("dev")
    labels = run.task.labels
    examples = classification.encode(run.tokenizer, records, lambda r: (r["sentence1"], r["sentence2"]), labels,
                                     24, second_segment)
    for record, (ids, segments, label) in zip(records, examples, strict=True):
        want_ids, want_segments = run.tokenizer.encode(record["sentence1"], record["sentence2"], maxlen=24)
        assert ids.tolist() == want_ids and label == labels.index(record["label"])
        assert segments.tolist() == (want_segments if second_segment else [0] * len(want_ids))
    (ids, _, label), = classification.encode(run.tokenizer, [{"id": 1, "sentence1": "你好"}],
                                             lambda r: (r["sentence1"],), labels, 24)
    assert label == 0 and ids.tolist() == run.tokenizer.encode("你好")[0]   # a test record: no label
