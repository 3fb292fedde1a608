"""convert_checkpoint: round trips TF -> safetensors -> .weights.h5 -> TF for the three families on generated
tiny checkpoints (tests/checkpoint_fixtures.py), and --inspect reports."""

import json

import numpy as np
import pytest
from checkpoint_fixtures import FAMILIES, make_checkpoint, random_batch, to_hf

from clue import convert
from clue.checkpoints import open_checkpoint
from clue.models import build_transformer_model

UNUSED = ("bert/pooler/dense/kernel", "bert/pooler/dense/bias", "cls/seq_relationship/output_weights",
          "cls/seq_relationship/output_bias")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    return {family: make_checkpoint(root / family, family, "tiny", seed=3) for family in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES)
def test_round_trip_keeps_every_encoder_weight(tmp_path, checkpoints, family):
    config, prefix, variables = checkpoints[family]
    used = {n: v for n, v in variables.items() if n not in UNUSED}

    lines = convert.convert(prefix, tmp_path / "model.safetensors")
    assert any(f"{len(used)} variables written and read back equal" in line for line in lines), lines
    # the keys are the HF ones, written out independently in checkpoint_fixtures.to_hf
    from safetensors.numpy import load_file
    prefix_hf = {"bert": "bert.", "roformer": "roformer.", "roformer_v2": ""}[family]
    written, expected = load_file(tmp_path / "model.safetensors"), to_hf(used, prefix_hf)
    assert sorted(written) == sorted(expected)
    assert all(np.array_equal(written[k], expected[k]) for k in expected)

    convert.convert(tmp_path / "model.safetensors", tmp_path / "model.weights.h5", config)
    convert.convert(tmp_path / "model.weights.h5", tmp_path / "back" / "bert_model.ckpt", config)
    reader = open_checkpoint(tmp_path / "back" / "bert_model.ckpt")
    assert set(reader.shapes) == set(used)
    assert all(np.array_equal(reader.get(n), v) for n, v in used.items())
    assert (tmp_path / "back" / "checkpoint").read_text().startswith('model_checkpoint_path: "bert_model.ckpt"')

    # the converted .weights.h5 gives the same encoder outputs as the original checkpoint
    token_ids, segment_ids = random_batch(300, [7, 4], seed=1)
    outputs = [build_transformer_model(config, path, model=family, with_mlm=family != "roformer_v2")
               .predict([token_ids, segment_ids], verbose=0) for path in (prefix, tmp_path / "model.weights.h5")]
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_unused_variables_are_named(tmp_path, checkpoints):
    _, prefix, _ = checkpoints["bert"]
    lines = convert.convert(prefix, tmp_path / "m.safetensors")
    left_out = next(line for line in lines if line.startswith("left out"))
    assert all(name in left_out for name in UNUSED)


def test_inspect_lists_variables_and_what_the_weights_imply(checkpoints):
    config_path, prefix, variables = checkpoints["roformer"]
    lines = convert.inspect(prefix)
    assert lines[0].endswith(f"{len(variables)} variables, {sum(v.size for v in variables.values()):,} values")
    for name, value in variables.items():
        assert f"  {name}  {list(value.shape)}" in lines
    assert "family roformer, MLM head weights: yes" in lines
    implied = json.loads(next(line for line in lines if line.startswith("config from the shapes: "))[24:])
    config = json.loads(config_path.read_text())
    assert implied == {k: config[k] for k in ("vocab_size", "hidden_size", "type_vocab_size",
                                              "num_hidden_layers", "intermediate_size")}
    assert "not in the weights, a config must give: num_attention_heads, hidden_act" in lines
    assert lines[-1].startswith(f"the encoder uses {len(variables) - 4} of {len(variables)} variables; not used: ")


def test_inspect_reports_what_a_config_gets_wrong_or_misses(tmp_path, checkpoints):
    config_path, prefix, _ = checkpoints["bert"]
    convert.convert(prefix, tmp_path / "m.safetensors")
    config = json.loads(config_path.read_text())
    config.update(num_hidden_layers=3, vocab_size=301)
    del config["num_attention_heads"]
    wrong = tmp_path / "config.json"
    wrong.write_text(json.dumps(config))
    lines = convert.inspect(tmp_path / "m.safetensors", wrong)
    assert f"{wrong}: num_hidden_layers = 3 but the weights say 2" in lines
    assert f"{wrong}: vocab_size = 301 but the weights say 300" in lines
    assert f"{wrong}: no num_attention_heads, which the weights do not record" in lines
    missing = [line for line in lines if line.startswith("missing: ")]
    assert missing and all("layer.2." in line for line in missing)   # HF names of the third layer
    assert any(line.startswith("shape: 'embeddings.word_embeddings.weight'") and "(300, 64)" in line
               and "(301, 64)" in line for line in lines)


def test_h5_needs_a_config_and_must_fit_it(tmp_path, checkpoints, capsys):
    config_path, prefix, _ = checkpoints["roformer_v2"]
    h5 = tmp_path / "m.weights.h5"
    convert.convert(prefix, h5, config_path)
    assert convert.inspect(h5)[-1].startswith("a .weights.h5 stores Keras layer paths")
    assert convert.inspect(h5, config_path)[-1] == f"matches the roformer_v2 encoder built from {config_path}"
    bigger = tmp_path / "bigger.json"
    bigger.write_text(json.dumps(dict(json.loads(config_path.read_text()), intermediate_size=256)))
    lines = convert.inspect(h5, bigger)
    assert any(line.startswith(f"does not match {bigger}") for line in lines)
    assert any("the config gives (64, 256), the file has (64, 128)" in line for line in lines)
    # the CLI: no config beside an h5 file is an error naming the fix
    assert convert.main([str(h5), str(tmp_path / "out.safetensors")]) == 1
    assert "pass --config" in capsys.readouterr().out
