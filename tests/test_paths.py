import json

import pytest

from clue.paths import MissingPathError, OutputDirs, data_root, find_task_dir
from clue.presets import preset_names, resolve_model


def test_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("CLUE_DATA_DIR", raising=False)
    assert data_root()[0].as_posix() == "datasets"
    monkeypatch.setenv("CLUE_DATA_DIR", str(tmp_path / "env"))
    assert data_root()[0] == tmp_path / "env"
    assert data_root(tmp_path / "flag")[0] == tmp_path / "flag"


def test_task_folder_and_public_alias(tmp_path):
    (tmp_path / "afqmc").mkdir()
    (tmp_path / "tnews_public").mkdir()
    assert find_task_dir("afqmc", tmp_path) == tmp_path / "afqmc"
    assert find_task_dir("tnews", tmp_path) == tmp_path / "tnews_public"


def test_missing_task_folder_says_what_and_where(tmp_path):
    with pytest.raises(MissingPathError) as err:
        find_task_dir("csl", tmp_path)
    message = str(err.value)
    assert str(tmp_path / "csl") in message and "csl_public" in message
    assert "--data-dir" in message and "CLUE_DATA_DIR" in message


def test_unknown_task():
    with pytest.raises(ValueError, match="unknown task 'foo'"):
        find_task_dir("foo")


def test_shared_data_has_every_staged_task(clue_data_dir):
    for task in ("afqmc", "tnews", "iflytek", "ocnli", "cluewsc2020", "csl", "cmrc2018", "c3", "cluener"):
        assert find_task_dir(task, clue_data_dir).is_dir()


def test_every_preset_loads(tmp_path):
    # a model folder holding what every file-based preset names: each resolves to its family's spec
    from clue.presets import FAMILIES, load_preset

    for name in preset_names():
        preset = load_preset(name)
        for file in preset.get("files", {}).values():
            (tmp_path / file).write_text(json.dumps({"hidden_size": 8}) if file.endswith(".json") else "")
        spec = resolve_model(name, tmp_path)
        assert spec.name == name and spec.family in FAMILIES and spec.config


def test_tiny_needs_no_files(monkeypatch):
    monkeypatch.delenv("CLUE_MODEL_DIR", raising=False)
    spec = resolve_model("tiny")
    assert spec.family == "bert" and spec.checkpoint_path is None and spec.vocab_path is None
    assert spec.config["hidden_size"] == 64


def test_pretrained_preset_without_model_dir(monkeypatch):
    monkeypatch.delenv("CLUE_MODEL_DIR", raising=False)
    with pytest.raises(MissingPathError, match="--model-dir or \\$CLUE_MODEL_DIR"):
        resolve_model("bert-base")


def test_pretrained_preset_checks_each_file(tmp_path):
    with pytest.raises(MissingPathError, match="bert_config.json"):
        resolve_model("roformer-v2-small", tmp_path)
    (tmp_path / "bert_config.json").write_text(json.dumps({"hidden_size": 8}))
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    with pytest.raises(MissingPathError, match="bert_model.ckpt.index"):
        resolve_model("roformer-v2-small", tmp_path)
    (tmp_path / "bert_model.ckpt.index").write_bytes(b"")
    spec = resolve_model("roformer-v2-small", tmp_path)
    assert spec.family == "roformer_v2" and spec.config == {"hidden_size": 8}


def test_model_path_to_preset_file(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"family": "roformer", "config": {"hidden_size": 32}}))
    spec = resolve_model(str(path))
    assert spec.name == "mine" and spec.family == "roformer"
    with pytest.raises(MissingPathError, match="neither a preset"):
        resolve_model(str(tmp_path / "absent.json"))


def test_output_dirs(tmp_path):
    out = OutputDirs(tmp_path).make()
    assert (tmp_path / "results").is_dir() and (tmp_path / "weights").is_dir() and (tmp_path / "logs").is_dir()
    assert out.results == tmp_path / "results"
