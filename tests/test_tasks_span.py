"""cmrc2018, chid, c3 and cluener end to end on small real data (chid on its generated fixture) with the
tiny preset, each output checked against its test file: every id once, answers inside their contexts,
entities equal to the text at their offsets, picks among the candidates."""

import importlib.util
import json
from pathlib import Path

from chid_fixture import make_chid
from clue import predictions
from clue.data import load_c3, load_chid, load_cluener, load_cmrc2018
from clue.registry import CLUENER_TYPES
from clue.tokenizer import Tokenizer, builtin_vocab

REPO = Path(__file__).resolve().parents[1]
QUICK = ["--model", "tiny", "--epochs", "1", "--verbose", "0", "--seed", "1"]


def run_script(name, *argv):
    spec = importlib.util.spec_from_file_location(f"task_{name}", REPO / "tasks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main([str(a) for a in argv])


def read_object(path):
    """A one-object JSON file, failing on duplicate keys (json.loads would keep the last silently)."""
    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), f"{path}: duplicate keys"
        return dict(pairs)
    return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=no_duplicates)


def read_lines(path):
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def link(folder, names):
    """``folder`` with a symlink for each {name in folder: real file}."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, target in names.items():
        (folder / name).symlink_to(target)
    return folder


def dev_metric(out, task):
    """The metric the run logged; its dev predictions, decoded from their saved scores, score its best."""
    state = json.loads((out / "logs" / f"{task}.state.json").read_text())
    assert 0.0 <= state["best"] <= 1.0
    saved = predictions.load(predictions.scores_path(predictions.dev_path(out / "results", task)))
    assert saved.score(state["metric"]) == state["best"]
    return state["metric"]


def test_cmrc2018(tmp_path, clue_data_dir):
    real = clue_data_dir / "cmrc2018"
    # the real train and dev sets and CLUE's unlabelled test set (FAKE_ANSWER placeholders, as released)
    folder = link(tmp_path / "data" / "cmrc2018", {f"{split}.json": real / f"cmrc2018_{split}.json"
                                                   for split in ("train", "dev", "test")})
    out = tmp_path / "out"
    run_script("cmrc2018", "--data-dir", tmp_path / "data", "--output-dir", out, "--limit", 24,
               "--maxlen", 96, "--batch-size", 8, *QUICK)

    test = load_cmrc2018(folder / "test.json")[:24]
    answers = read_object(out / "results" / "cmrc2018_predict.json")
    assert list(answers) == [r["id"] for r in test]          # every question once, in file order
    for record in test:
        assert answers[record["id"]], record["id"]
        assert answers[record["id"]] in record["context"]
    assert dev_metric(out, "cmrc2018") == "cmrc2018_em"


def test_chid_on_fixture_and_predict_mode(tmp_path):
    written = make_chid(tmp_path / "data" / "chid")
    out = tmp_path / "out"
    argv = ["--data-dir", tmp_path / "data", "--output-dir", out, "--batch-size", 8, *QUICK]
    run_script("chid", *argv)
    results = out / "results"
    for split, name in (("test1.1", "chid11_predict.json"), ("test1.0", "chid10_predict.json")):
        picks = read_object(results / name)
        blanks = load_chid(tmp_path / "data" / "chid" / f"{split}.json")
        assert list(picks) == [b["id"] for b in blanks]      # every blank once
        assert len(picks) == len(written[split][1])
        for line in {b["group"] for b in blanks}:          # blanks of one line never share an idiom
            chosen = [picks[b["id"]] for b in blanks if b["group"] == line]
            assert all(isinstance(p, int) and 0 <= p < 10 for p in chosen)
            assert len(set(chosen)) == len(chosen)
    assert dev_metric(out, "chid") == "accuracy"

    # --mode predict reloads the best weights and writes the same file again
    first = (results / "chid11_predict.json").read_text()
    (results / "chid11_predict.json").unlink()
    run_script("chid", *argv, "--mode", "predict")
    assert (results / "chid11_predict.json").read_text() == first


def test_c3_upstream_files(tmp_path, clue_data_dir):
    real = clue_data_dir / "c3"
    folder = link(tmp_path / "data" / "c3", {f"c3-{p}-{s}.json": real / f"c3-{p}-{s}.json"
                                             for p in "dm" for s in ("train", "dev")})
    # a small upstream test set in its two parts: the output must cover both, d- questions first
    for part in "dm":
        docs = json.loads((real / f"c3-{part}-test.json").read_text(encoding="utf-8"))[:4]
        (folder / f"c3-{part}-test.json").write_text(json.dumps(docs, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "out"
    run_script("c3", "--data-dir", tmp_path / "data", "--output-dir", out, "--limit", 32,
               "--maxlen", 96, "--batch-size", 4, "--grad-accum", 2, *QUICK)

    test = load_c3([folder / "c3-d-test.json", folder / "c3-m-test.json"])
    assert 8 <= len(test) <= 32
    lines = read_lines(out / "results" / "c311_predict.json")
    assert [line["id"] for line in lines] == [r["id"] for r in test]
    for line, record in zip(lines, test):
        assert line["label"] in [str(i) for i in range(len(record["choices"]))]
    assert dev_metric(out, "c3") == "accuracy"


def test_c3_clue_test_sets(tmp_path, clue_data_dir):
    real = clue_data_dir / "c3"
    # CLUE's own layout: c311 from test1.1.json, c310 from test1.0.json (documents without ids or answers)
    names = {f"c3-{p}-{s}.json": real / f"c3-{p}-{s}.json" for p in "dm" for s in ("train", "dev")}
    folder = link(tmp_path / "data" / "c3", {**names, "test1.1.json": real / "test1.1.json",
                                             "test1.0.json": real / "test1.0.json"})
    out = tmp_path / "out"
    run_script("c3", "--data-dir", tmp_path / "data", "--output-dir", out, "--limit", 12,
               "--maxlen", 64, "--batch-size", 4, *QUICK)
    for test_file, name in (("test1.1.json", "c311_predict.json"), ("test1.0.json", "c310_predict.json")):
        test = load_c3(folder / test_file)[:12]
        lines = read_lines(out / "results" / name)
        assert [line["id"] for line in lines] == [r["id"] for r in test]
        assert all(line["label"] in [str(i) for i in range(len(r["choices"]))] for line, r in zip(lines, test))


def test_cluener(tmp_path, clue_data_dir):
    real = clue_data_dir / "cluener"
    link(tmp_path / "data" / "cluener", {f"{s}.json": real / f"{s}.json" for s in ("train", "dev", "test")})
    out = tmp_path / "out"
    run_script("cluener", "--data-dir", tmp_path / "data", "--output-dir", out, "--limit", 64,
               "--batch-size", 16, *QUICK)

    test = load_cluener(real / "test.json", CLUENER_TYPES)[:64]
    lines = read_lines(out / "results" / "cluener_predict.json")
    assert [line["id"] for line in lines] == [r["id"] for r in test]
    found = 0
    for line, record in zip(lines, test):
        for kind, entities in line["label"].items():
            assert kind in CLUENER_TYPES
            for entity, places in entities.items():
                for start, end in places:
                    assert record["text"][start:end + 1] == entity
                    found += 1
    assert found > 0     # an untrained model scores many spans above 0: the offsets were checked
    assert dev_metric(out, "cluener") == "cluener_f1"


def test_chid_and_cluener_take_the_roformer_v2_recipe(tmp_path, clue_data_dir, monkeypatch):
    from clue import heads, multiple_choice

    preset = json.loads((REPO / "configs" / "tiny.json").read_text())
    v2 = tmp_path / "tiny_v2.json"
    v2.write_text(json.dumps(dict(preset, name="tiny-v2", family="roformer_v2")))
    quick = [a if a != "tiny" else v2 for a in QUICK]
    framed, pointers = [], []
    monkeypatch.setattr(multiple_choice, "idiom_between",
                        lambda *a, f=multiple_choice.idiom_between: framed.append(f(*a)) or framed[-1])
    monkeypatch.setattr(heads, "span_scorer", lambda *a, f=heads.span_scorer, **k: pointers.append(k) or f(*a, **k))

    make_chid(tmp_path / "data" / "chid")
    run_script("chid", "--data-dir", tmp_path / "data", "--output-dir", tmp_path / "chid", "--batch-size", 8,
               *quick)
    sep = Tokenizer(builtin_vocab()).sep_id   # the tiny preset's built-in vocabulary
    # every blank's 10 candidates framed [CLS] left [SEP] idiom [SEP] right [SEP]: 4 idiom tokens between
    assert framed and all(len(c) == 10 and all(ids.count(sep) == 3 and ids[ids.index(sep) + 5] == sep for ids in c)
                          for c in framed)
    assert read_object(tmp_path / "chid" / "results" / "chid11_predict.json")

    real = clue_data_dir / "cluener"
    link(tmp_path / "data" / "cluener", {f"{s}.json": real / f"{s}.json" for s in ("train", "dev", "test")})
    run_script("cluener", "--data-dir", tmp_path / "data", "--output-dir", tmp_path / "ner", "--limit", 32,
               "--batch-size", 16, *quick)
    assert pointers == [{"heads": 10, "seed": 1, "efficient": True}]
    assert len(read_lines(tmp_path / "ner" / "results" / "cluener_predict.json")) == 32
