"""Bad model-side input (issue 19): a preset, bert_config.json, vocabulary or checkpoint that cannot be used
ends a task script with one ``error:`` line naming the file (and line or key) and exit status 1, found
before any training. Checkpoints are the random ones of tests/checkpoint_fixtures.py, in the real formats."""

import json
import shutil
import sys
from pathlib import Path

import pytest
from checkpoint_fixtures import TINY, make_checkpoint, to_hf

from clue import cli, convert, demo
from clue.models import build_from_spec, build_transformer_model
from clue.presets import load_preset, resolve_model
from clue.tokenizer import SPECIALS, Tokenizer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tasks"))
import afqmc  # noqa: E402

FILES = {"config": "bert_config.json", "checkpoint": "bert_model.ckpt", "vocab": "vocab.txt"}
SMALL_RUN = ["--epochs", "1", "--limit", "4", "--batch-size", "4", "--maxlen", "16", "--verbose", "0"]


def vocab_tokens(size):
    return list(SPECIALS) + [chr(0x4E00 + i) for i in range(size - len(SPECIALS))]


def write_vocab(path, size=TINY["vocab_size"], bom=False):
    path.write_text(("\ufeff" if bom else "") + "\n".join(vocab_tokens(size)) + "\n", encoding="utf-8")
    return path


def write_json(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A model folder as Google's zips unpack: bert_config.json, bert_model.ckpt.*, vocab.txt (300 tokens),
    plus the same weights as model.safetensors."""
    folder = tmp_path_factory.mktemp("pretrained")
    _, _, variables = make_checkpoint(folder, "bert", "tiny")
    write_vocab(folder / "vocab.txt")
    from safetensors.numpy import save_file
    save_file(to_hf(variables, "bert."), str(folder / "model.safetensors"))
    return folder


@pytest.fixture
def model_dir(pretrained, tmp_path):
    """A copy of the model folder this test may spoil, and a preset naming its files."""
    folder = shutil.copytree(pretrained, tmp_path / "model")
    write_json(tmp_path / "mine.json", {"family": "bert", "files": FILES})
    return folder


def error_line(main):
    """The message ``cli.run(main)`` exits with (to stderr, status 1); fails when main returns."""
    with pytest.raises(SystemExit) as exit_info:
        cli.run(main)
    message = exit_info.value.code
    assert isinstance(message, str) and message.startswith("error: ") and "\n" not in message, message
    return message


def run_afqmc(tmp_path, *flags):
    """afqmc's main as ``python tasks/afqmc.py`` runs it, on a small demo data folder; the error line."""
    data = tmp_path / "data"
    if not data.exists():
        demo.make_afqmc(data / "afqmc", seed=1, sizes={"train": 8, "dev": 4, "test": 4})
    out = tmp_path / "out"
    message = error_line(lambda: afqmc.main(["--data-dir", str(data), "--output-dir", str(out), *flags, *SMALL_RUN]))
    assert not (out / "weights" / "afqmc.weights.h5").exists()   # found before training
    return message


# ---------------------------------------------------------------------------------------------------------
# 1-3. Presets and bert_config.json


@pytest.mark.parametrize("text, expected", [
    ('{"family": "bert",\n "files": {\n', r"mine.json:3: not valid JSON"),
    ('["bert"]', r"mine.json: expected a JSON object"),
    ('{"family": "gpt2", "config": {}}', r"mine.json: 'family' must be one of"),
    ('{"family": "bert", "config": {}, "files": {}}', r"mine.json: a preset has either an inline 'config' or a "),
    ('{"family": "bert", "files": {"config": "c.json", "chekpoint": "m.ckpt", "vocab": "v.txt"}}',
     r"mine.json: files: unknown key 'chekpoint' \(did you mean 'checkpoint'\?"),
    ('{"family": "bert", "files": {"config": "c.json", "vocab": "v.txt"}}',
     r"mine.json: the 'files' table lacks checkpoint"),
    ('{"family": "bert", "files": {"config": "c.json", "checkpoint": 3, "vocab": "v.txt"}}',
     r"mine.json: files.checkpoint must be a file name"),
    ('{"family": "bert", "config": {}, "do_lower_cas": false}',
     r"mine.json: unknown key 'do_lower_cas' \(did you mean 'do_lower_case'\?"),
    ('{"family": "bert", "config": {}, "do_lower_case": "no"}', r"mine.json: 'do_lower_case' must be a boolean"),
    ('{"family": "bert", "checkpoint": "m.ckpt", "config": {}}', r"mine.json: 'checkpoint' belongs in the 'files'"),
    ('{"family": "bert", "files": {"config": "c.json", "checkpoint": "m.ckpt", "vocab": "v.txt"}, "vocab": "v.txt"}',
     r"mine.json: 'vocab' is for presets with an inline 'config'"),
])
def test_a_bad_preset_is_one_error_line_naming_it(tmp_path, text, expected):
    (tmp_path / "mine.json").write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=expected):
        load_preset(str(tmp_path / "mine.json"))
    assert str(tmp_path / "mine.json") in error_line(lambda: resolve_model(str(tmp_path / "mine.json"), tmp_path))


def test_every_shipped_preset_passes_the_key_check():
    for path in sorted((REPO / "configs").glob("*.json")):
        assert load_preset(str(path))["family"]


def test_a_task_script_ends_a_preset_typo_with_the_close_name(tmp_path, model_dir):
    write_json(tmp_path / "mine.json", {"family": "bert", "files": {**FILES, "chekpoint": "bert_model.ckpt"}})
    message = run_afqmc(tmp_path, "--model", str(tmp_path / "mine.json"), "--model-dir", str(model_dir))
    assert "did you mean 'checkpoint'" in message


@pytest.mark.parametrize("change, expected", [
    ({"num_attention_heads": None}, "missing num_attention_heads"),
    ({"hidden_size": "64"}, "hidden_size must be a positive integer, got '64'"),
    ({"num_hidden_layers": 0}, "num_hidden_layers must be a positive integer, got 0"),
    ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob must be a number from 0 to below 1, got 1.5"),
    ({"hidden_act": "mish"}, "hidden_act 'mish' is not supported"),
])
def test_a_bad_bert_config_names_its_file_and_key(tmp_path, model_dir, change, expected):
    config = {key: value for key, value in {**TINY, **change}.items() if value is not None}
    write_json(model_dir / "bert_config.json", config)
    spec = resolve_model(str(tmp_path / "mine.json"), model_dir)
    message = error_line(lambda: build_from_spec(spec, TINY["vocab_size"]))
    assert message.startswith(f"error: {model_dir / 'bert_config.json'}: {expected}"), message


def test_bert_config_json_that_is_not_json_names_file_and_line(tmp_path, model_dir):
    (model_dir / "bert_config.json").write_text('{\n  "hidden_size": 64,\n}\n')
    message = error_line(lambda: resolve_model(str(tmp_path / "mine.json"), model_dir))
    assert message.startswith(f"error: {model_dir / 'bert_config.json'}:3: not valid JSON")


def test_an_inline_config_error_names_the_preset_file(tmp_path):
    write_json(tmp_path / "mine.json", {"family": "bert", "config": {"hidden_size": 64, "num_hidden_layers": 1,
                                                                     "intermediate_size": 32}})
    spec = resolve_model(str(tmp_path / "mine.json"))
    message = error_line(lambda: build_from_spec(spec, 300))
    assert message == f"error: {tmp_path / 'mine.json'}: missing num_attention_heads"


def test_extra_keys_of_real_configs_are_left_alone(pretrained):
    # keys of Google's, HFL's and Hugging Face's config.json files that the builder does not read
    extras = dict(directionality="bidi", pooler_fc_size=768, pooler_num_attention_heads=12, pooler_num_fc_layers=3,
                  pooler_size_per_head=128, pooler_type="first_token_transform", model_type="bert",
                  architectures=["BertForMaskedLM"], output_past=True, layer_norm_eps=1e-12, pad_token_id=0,
                  position_embedding_type="absolute", transformers_version="4.30.0", use_cache=True)
    model = build_transformer_model(config={**TINY, **extras}, checkpoint_path=pretrained / "bert_model.ckpt")
    assert model.config.num_layers == TINY["num_hidden_layers"]


def test_a_relative_vocab_is_read_from_the_preset_folder(tmp_path, monkeypatch):
    presets = tmp_path / "presets"
    write_json(presets / "mine.json", {"family": "bert", "config": {"hidden_size": 64}, "vocab": "mine-vocab.txt"})
    write_vocab(presets / "mine-vocab.txt")
    monkeypatch.chdir(tmp_path)   # not the preset's folder
    monkeypatch.delenv("CLUE_MODEL_DIR", raising=False)
    assert resolve_model(str(presets / "mine.json")).vocab_path == presets / "mine-vocab.txt"
    write_json(presets / "mine.json", {"family": "bert", "config": {"hidden_size": 64}, "vocab": "absent.txt"})
    message = error_line(lambda: resolve_model(str(presets / "mine.json")))
    assert message.startswith(f"error: {presets / 'mine.json'}: no vocabulary file {presets / 'absent.txt'}")


# ---------------------------------------------------------------------------------------------------------
# 4. The vocabulary


TEXTS = ["今天天气不错", "一丁七万 [PAD] 三上下", "\ufeff一丁"]


def test_a_vocab_with_a_bom_gives_the_ids_bert4keras_gives(tmp_path):
    from bert4keras_oracle import run_bert4keras

    bom = write_vocab(tmp_path / "bom.txt", bom=True)
    plain = Tokenizer(str(write_vocab(tmp_path / "plain.txt")))
    ours = Tokenizer(str(bom))
    assert ours.pad_id == 0 and ours.vocab == plain.vocab
    theirs = json.loads(run_bert4keras(
        "import json, sys; from bert4keras.tokenizers import Tokenizer\n"
        "t = Tokenizer(sys.argv[1], do_lower_case=True)\n"
        "print(json.dumps([t.encode(text) for text in json.loads(sys.argv[2])]))", bom, json.dumps(TEXTS)))
    assert [list(map(list, ours.encode(text))) for text in TEXTS] == theirs


def test_a_bom_before_an_ordinary_token_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\ufeff的\n" + "\n".join(SPECIALS) + "\n", encoding="utf-8")
    message = error_line(lambda: Tokenizer(str(path)))
    assert message.startswith(f"error: {path}:1: starts with a UTF-8 byte order mark before '的'")


def test_vocab_errors_name_the_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[UNK]\n[CLS]\n[SEP]\n", encoding="utf-8")
    assert error_line(lambda: Tokenizer(str(path))) == f"error: {path} lacks the special tokens ['[PAD]'] (3 tokens read)"
    path.write_bytes("\n".join(SPECIALS).encode() + b"\n\xff\xfe\n")
    assert error_line(lambda: Tokenizer(str(path))).startswith(f"error: {path}:6: not UTF-8")


def test_a_task_script_ends_a_bad_vocab_with_its_file(tmp_path, model_dir):
    (model_dir / "vocab.txt").write_text("a\nb\n", encoding="utf-8")
    message = run_afqmc(tmp_path, "--model", str(tmp_path / "mine.json"), "--model-dir", str(model_dir))
    assert message.startswith(f"error: {model_dir / 'vocab.txt'} lacks the special tokens")


# ---------------------------------------------------------------------------------------------------------
# 5. Vocabulary, config and checkpoint of different models


@pytest.mark.parametrize("size", [TINY["vocab_size"] - 1, TINY["vocab_size"] + 1])
def test_a_vocab_of_another_size_than_the_embeddings_is_an_error(tmp_path, model_dir, size):
    write_vocab(model_dir / "vocab.txt", size)
    spec = resolve_model(str(tmp_path / "mine.json"), model_dir)
    message = error_line(lambda: build_from_spec(spec, Tokenizer(str(spec.vocab_path)).vocab_size))
    assert message == (f"error: {model_dir / 'vocab.txt'}: {size} tokens, but the word embeddings of "
                       f"{model_dir / 'bert_model.ckpt'} have 300 rows: the vocabulary and the checkpoint are not "
                       f"of the same model")


@pytest.mark.parametrize("layers", [1, 3])
def test_a_config_with_other_layers_than_the_checkpoint_is_an_error(tmp_path, model_dir, layers):
    write_json(model_dir / "bert_config.json", dict(TINY, num_hidden_layers=layers))
    spec = resolve_model(str(tmp_path / "mine.json"), model_dir)
    message = error_line(lambda: build_from_spec(spec, TINY["vocab_size"]))
    assert message == (f"error: {model_dir / 'bert_config.json'}: num_hidden_layers {layers}, but "
                       f"{model_dir / 'bert_model.ckpt'} holds 2 layers")


def test_the_sizes_are_read_off_a_safetensors_header_too(tmp_path, model_dir):
    write_json(tmp_path / "mine.json", {"family": "bert", "files": {**FILES, "checkpoint": "model.safetensors"}})
    write_json(model_dir / "bert_config.json", dict(TINY, num_hidden_layers=1))
    spec = resolve_model(str(tmp_path / "mine.json"), model_dir)
    message = error_line(lambda: build_from_spec(spec, TINY["vocab_size"]))
    assert message.endswith(f"num_hidden_layers 1, but {model_dir / 'model.safetensors'} holds 2 layers")


def test_a_task_script_checks_the_sizes_before_training(tmp_path, model_dir):
    write_json(model_dir / "bert_config.json", dict(TINY, num_hidden_layers=1))
    message = run_afqmc(tmp_path, "--model", str(tmp_path / "mine.json"), "--model-dir", str(model_dir))
    assert message.endswith("num_hidden_layers 1, but " f"{model_dir / 'bert_model.ckpt'} holds 2 layers")


def test_an_inline_vocab_size_smaller_than_the_vocabulary_is_an_error(tmp_path):
    write_vocab(tmp_path / "vocab.txt", 300)
    write_json(tmp_path / "mine.json", {"family": "bert", "vocab": "vocab.txt",
                                        "config": dict(TINY, vocab_size=200)})
    spec = resolve_model(str(tmp_path / "mine.json"))
    message = error_line(lambda: build_from_spec(spec, 300))
    assert message == (f"error: {tmp_path / 'vocab.txt'}: 300 tokens, but {tmp_path / 'mine.json'} gives "
                       f"vocab_size 200: the ids past it have no embedding")


# ---------------------------------------------------------------------------------------------------------
# 6. Truncated checkpoint files


def truncate(path, keep):
    with open(path, "r+b") as file:
        file.truncate(keep)


def test_a_truncated_tf_checkpoint_names_its_data_file(tmp_path, model_dir):
    data = model_dir / "bert_model.ckpt.data-00000-of-00001"
    truncate(data, data.stat().st_size // 2)
    config, checkpoint = model_dir / "bert_config.json", model_dir / "bert_model.ckpt"
    message = error_line(lambda: build_transformer_model(config, checkpoint))
    assert message.startswith(f"error: {data}: truncated: {data.stat().st_size:,} bytes, but {checkpoint}.index "
                              f"lists 397,496 bytes of tensors")
    assert convert.main(["--inspect", str(checkpoint)]) == 1
    data.unlink()
    assert error_line(lambda: build_transformer_model(config, checkpoint)) == \
        f"error: {data}: missing, and {checkpoint}.index lists its tensors"


def test_a_truncated_tf_index_names_it(tmp_path, model_dir):
    index = model_dir / "bert_model.ckpt.index"
    truncate(index, 40)
    message = error_line(lambda: build_transformer_model(model_dir / "bert_config.json", model_dir / "bert_model.ckpt"))
    assert message.startswith(f"error: {index}: not a readable TF checkpoint index")


def test_a_truncated_safetensors_file_names_it(tmp_path, model_dir, capsys):
    path = model_dir / "model.safetensors"
    truncate(path, path.stat().st_size - 1000)
    message = error_line(lambda: build_transformer_model(model_dir / "bert_config.json", path))
    assert message.startswith(f"error: {path}: not a readable safetensors file")
    assert convert.main(["--inspect", str(path)]) == 1
    assert str(path) in capsys.readouterr().out
