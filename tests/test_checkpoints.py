"""Checkpoint formats and their errors: Google TF, Hugging Face safetensors, Keras .weights.h5, pickles."""

import importlib.util
import pickle

import keras
import numpy as np
import pytest
from safetensors.numpy import save_file

import checkpoint_fixtures as cf
from clue.checkpoints import CheckpointError, hf_name, load_weights
from clue.models import build_from_spec, build_transformer_model
from clue.presets import ModelSpec


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """{family: (config_path, checkpoint, variables)} of tiny random Google-format checkpoints."""
    root = tmp_path_factory.mktemp("tiny_checkpoints")
    return {family: cf.make_checkpoint(root / family, family, "tiny", seed=5) for family in cf.FAMILIES}


def run(model):
    token_ids, segment_ids = cf.random_batch(cf.TINY["vocab_size"], [10, 6], seed=2)
    return np.asarray(model([token_ids, segment_ids]))


@pytest.mark.parametrize("family,prefix", [("bert", "bert."), ("roformer", "roformer."), ("roformer_v2", "")])
def test_safetensors_equals_tf_checkpoint(tiny, tmp_path, family, prefix):
    config_path, checkpoint, variables = tiny[family]
    path = tmp_path / "model.safetensors"
    save_file(cf.to_hf(variables, prefix), str(path))
    mlm = family != "roformer_v2"
    from_tf = build_transformer_model(config_path, checkpoint, model=family, with_mlm=mlm)
    from_hf = build_transformer_model(config_path, path, model=family, with_mlm=mlm)
    for a, b in zip(from_tf.weights, from_hf.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    np.testing.assert_array_equal(run(from_tf), run(from_hf))


def test_safetensors_older_layernorm_names(tiny, tmp_path):
    config_path, checkpoint, variables = tiny["bert"]
    hf = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
          for k, v in cf.to_hf(variables, "bert.").items()}
    save_file(hf, str(tmp_path / "old.safetensors"))
    np.testing.assert_array_equal(run(build_transformer_model(config_path, checkpoint)),
                                  run(build_transformer_model(config_path, tmp_path / "old.safetensors")))


def test_safetensors_bfloat16(tiny, tmp_path):
    """bfloat16 files (numpy has no such dtype) load as the float32 values they hold."""
    import ml_dtypes   # a TensorFlow dependency

    config_path, _, variables = tiny["roformer"]
    hf = {k: v.astype(ml_dtypes.bfloat16) for k, v in cf.to_hf(variables, "roformer.").items()}
    save_file(hf, str(tmp_path / "bf16.safetensors"))
    model = build_transformer_model(config_path, tmp_path / "bf16.safetensors", model="roformer")
    kernel = model.get_layer("Transformer-1-FeedForward").intermediate.kernel
    expected = hf["roformer.encoder.layer.1.intermediate.dense.weight"].astype(np.float32).T
    np.testing.assert_array_equal(np.asarray(kernel), expected)
    assert np.abs(expected - variables["bert/encoder/layer_1/intermediate/dense/kernel"]).max() > 0   # rounded


def test_hf_names():
    assert hf_name("bert/encoder/layer_11/attention/self/query/kernel") == "encoder.layer.11.attention.self.query.weight"
    assert hf_name("bert/embeddings/LayerNorm/beta") == "embeddings.LayerNorm.bias"
    assert hf_name("bert/embeddings/word_embeddings") == "embeddings.word_embeddings.weight"
    assert hf_name("cls/predictions/transform/dense/kernel") == "cls.predictions.transform.dense.weight"
    assert hf_name("cls/predictions/output_bias") == "cls.predictions.bias"


def test_weights_h5_round_trip_is_exact(tmp_path):
    model = build_transformer_model(config=cf.TINY, model="roformer", with_mlm=True, seed=1)
    path = tmp_path / "encoder.weights.h5"
    model.save_weights(path)
    loaded = build_transformer_model(config=cf.TINY, model="roformer", with_mlm=True, seed=2,
                                     checkpoint_path=path)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    np.testing.assert_array_equal(run(model), run(loaded))
    model.save(tmp_path / "encoder.keras")   # a whole-model file restores the registered layers
    np.testing.assert_array_equal(run(keras.models.load_model(tmp_path / "encoder.keras")), run(model))


def test_checkpoint_folder_and_build_from_spec(tiny):
    config_path, checkpoint, _ = tiny["roformer"]
    expected = run(build_transformer_model(config_path, checkpoint, model="roformer"))
    np.testing.assert_array_equal(run(build_transformer_model(config_path, checkpoint.parent, model="roformer")),
                                  expected)
    config = {k: v for k, v in cf.TINY.items() if k != "vocab_size"}
    spec = ModelSpec("custom", "roformer", config, checkpoint_path=checkpoint)
    np.testing.assert_array_equal(run(build_from_spec(spec, vocab_size=cf.TINY["vocab_size"])), expected)
    inline = build_from_spec(ModelSpec("tiny", "bert", config), vocab_size=123, seed=0)
    assert inline.get_layer("Embedding-Token").embeddings.shape == (123, 64)


def test_missing_variable(tiny, tmp_path):
    config_path, _, variables = tiny["bert"]
    variables = {k: v for k, v in variables.items() if k != "bert/encoder/layer_1/attention/self/key/kernel"}
    checkpoint = cf.write_tf_checkpoint(tmp_path / "bert_model.ckpt", variables)
    with pytest.raises(CheckpointError, match=r"missing variable 'bert/encoder/layer_1/attention/self/key/kernel'"
                                              r" needed by Transformer-1-MultiHeadSelfAttention/key/kernel"):
        build_transformer_model(config_path, checkpoint)
    save_file(cf.to_hf(variables, "bert."), str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing variable 'encoder.layer.1.attention.self.key.weight'"):
        build_transformer_model(config_path, tmp_path / "model.safetensors")


def test_mlm_needs_cls_variables(tiny, tmp_path):
    config_path, _, variables = tiny["roformer"]
    encoder_only = {k: v for k, v in variables.items() if not k.startswith("cls/")}
    checkpoint = cf.write_tf_checkpoint(tmp_path / "bert_model.ckpt", encoder_only)
    build_transformer_model(config_path, checkpoint, model="roformer")   # the encoder alone loads
    with pytest.raises(CheckpointError, match="missing variable 'cls/predictions/transform/dense/kernel'"):
        build_transformer_model(config_path, checkpoint, model="roformer", with_mlm=True)


def test_shape_disagreeing_with_config(tiny, tmp_path):
    config_path, checkpoint, variables = tiny["bert"]
    message = (r"variable 'bert/embeddings/word_embeddings' has shape \(300, 64\) but the config gives "
               r"Embedding-Token/embeddings shape \(301, 64\)")
    with pytest.raises(CheckpointError, match=message):
        build_transformer_model(config_path, checkpoint, config={"vocab_size": 301})
    save_file(cf.to_hf(variables), str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"'encoder.layer.0.intermediate.dense.weight' \(TF name "
                                              r"'bert/encoder/layer_0/intermediate/dense/kernel'\) has shape "
                                              r"\(64, 128\) but the config gives .* shape \(64, 96\)"):
        build_transformer_model(config_path, tmp_path / "model.safetensors", config={"intermediate_size": 96})


def test_unknown_family(tiny):
    config_path, checkpoint, _ = tiny["bert"]
    with pytest.raises(ValueError, match="unknown model family 'gpt2': expected one of bert, roformer, roformer_v2"):
        build_transformer_model(config_path, checkpoint, model="gpt2")


class _Marker:
    """Unpickling this would create a file: proof that nothing was unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pytorch_bin_is_refused_not_unpickled(tiny, tmp_path):
    config_path, _, _ = tiny["bert"]
    marker = tmp_path / "unpickled"
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(pickle.dumps(_Marker(str(marker))))
    with pytest.raises(CheckpointError, match=r"refusing to unpickle .* Convert it once to safetensors"):
        build_transformer_model(config_path, path)
    assert not marker.exists()


def test_missing_files(tiny, tmp_path):
    config_path, _, _ = tiny["bert"]
    with pytest.raises(CheckpointError, match=r"no TF checkpoint here \(looked for .*nothing.ckpt.index\)"):
        build_transformer_model(config_path, tmp_path / "nothing.ckpt")
    with pytest.raises(CheckpointError, match="no such safetensors file"):
        build_transformer_model(config_path, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match="a folder without a TF checkpoint"):
        build_transformer_model(config_path, tmp_path)
    with pytest.raises(CheckpointError, match="no such Keras weights file"):
        load_weights(build_transformer_model(config_path), tmp_path / "x.weights.h5")


@pytest.mark.skipif(importlib.util.find_spec("transformers") is None, reason="transformers not installed")
@pytest.mark.parametrize("family", ["bert", "roformer"])
def test_matches_transformers(tiny, tmp_path, family):
    """Where transformers is installed: its BertModel / RoFormerModel on our safetensors file."""
    import torch
    import transformers

    config_path, checkpoint, variables = tiny[family]
    config = cf.family_config(family, "tiny")
    path = tmp_path / "model.safetensors"
    save_file(cf.to_hf({k: v for k, v in variables.items() if not k.startswith("cls/")}), str(path))
    if family == "bert":
        hf = transformers.BertModel(transformers.BertConfig(**config, layer_norm_eps=1e-12))
    else:
        hf = transformers.RoFormerModel(transformers.RoFormerConfig(**config, layer_norm_eps=1e-7))
    from safetensors.torch import load_file
    missing, _ = hf.load_state_dict(load_file(str(path)), strict=False)
    assert not [m for m in missing if "pooler" not in m and "embed_positions" not in m], missing
    token_ids, segment_ids = cf.random_batch(config["vocab_size"], [10, 6], seed=2)
    hf.eval()
    with torch.no_grad():
        expected = hf(input_ids=torch.tensor(token_ids, dtype=torch.long),
                      token_type_ids=torch.tensor(segment_ids, dtype=torch.long),
                      attention_mask=torch.tensor(token_ids != 0)).last_hidden_state.numpy()
    ours = run(build_transformer_model(config_path, path, model=family))
    diff = np.abs(ours - expected)[token_ids != 0].max()
    print(f"{family}: max abs diff vs transformers {transformers.__version__}: {diff:.2e}")
    assert diff <= 1e-5
    keras.backend.clear_session()
