"""The encoder against bert4keras 0.11.5 on random checkpoints in Google's TF format, tiny and BERT-base size.

bert4keras runs once, in one subprocess, for all six checkpoints. Both sides are called eagerly (op by op),
where they agree bit for bit; the XLA-compiled ``predict`` path reorders float sums and is checked too.
"""

import keras
import numpy as np
import pytest

import checkpoint_fixtures as cf
from clue.layers import SelfAttention
from clue.models import FAMILIES, EncoderConfig, build_transformer_model

CASES = [(family, size) for size in ("tiny", "base") for family in cf.FAMILIES]
LENGTHS = [16, 9, 4]   # padded batch; row 2 also starts with padding (bert4keras never masks position 0)


def batch(config):
    token_ids, segment_ids = cf.random_batch(config["vocab_size"], LENGTHS, seed=1)
    token_ids[2, 0] = 0
    return token_ids, segment_ids


@pytest.fixture(scope="session")
def oracle(tmp_path_factory):
    """{(family, size): (config_path, checkpoint, bert4keras outputs)} for every case."""
    root = tmp_path_factory.mktemp("encoder_checkpoints")
    jobs = []
    for family, size in CASES:
        config_path, checkpoint, _ = cf.make_checkpoint(root / f"{family}-{size}", family, size)
        token_ids, segment_ids = batch(cf.family_config(family, size))
        jobs.append(dict(config=config_path, checkpoint=checkpoint, family=family, token_ids=token_ids,
                         segment_ids=segment_ids))
    outputs = cf.bert4keras_outputs(jobs, root)
    return {case: (job["config"], job["checkpoint"], out) for case, job, out in zip(CASES, jobs, outputs)}


@pytest.mark.parametrize("family,size", CASES)
def test_equals_bert4keras(oracle, family, size):
    config_path, checkpoint, expected = oracle[family, size]
    config = cf.family_config(family, size)
    token_ids, segment_ids = batch(config)
    keep = token_ids != 0   # compare where there are tokens
    model = build_transformer_model(config_path, checkpoint, model=family, with_mlm=True)
    probe = cf.probe(model)

    diffs = {name: np.abs(np.asarray(ours) - expected[name])[keep].max()
             for name, ours in probe([token_ids, segment_ids]).items()}
    print(f"{family}/{size} eager max abs diff vs bert4keras: {diffs}")
    assert all(diff <= 1e-5 for diff in diffs.values()), diffs
    assert np.abs(expected["hidden"]).max() > 1 and np.abs(expected["logits"]).max() > 5  # not degenerate

    # the hidden-states model as users get it, compiled by XLA in predict
    encoder = keras.Model(model.inputs, probe.output["hidden"])
    compiled = encoder.predict([token_ids, segment_ids], batch_size=len(LENGTHS), verbose=0)
    diff = np.abs(compiled - expected["hidden"])[keep].max()
    print(f"{family}/{size} predict (XLA) hidden max abs diff: {diff:.2e}")
    assert diff <= 1e-5
    keras.backend.clear_session()


def test_padding_is_masked(oracle):
    """Changing what sits under padding changes nothing at the real tokens."""
    config_path, checkpoint, _ = oracle["roformer", "tiny"]
    model = build_transformer_model(config_path, checkpoint, model="roformer")
    token_ids, segment_ids = batch(cf.family_config("roformer", "tiny"))
    other = token_ids.copy()
    other[1, 9:] = 0   # already padding: keep padding but move what segments say there
    other_segments = segment_ids.copy()
    other_segments[1, 9:] = 1
    a = np.asarray(model([token_ids, segment_ids]))
    b = np.asarray(model([other, other_segments]))
    np.testing.assert_array_equal(a[1, :9], b[1, :9])
    longer = token_ids.copy()
    longer[1, 9:] = 5   # un-padding them changes the real tokens' states
    assert np.abs(np.asarray(model([longer, segment_ids]))[1, :9] - a[1, :9]).max() > 1e-3


def test_layer_names_follow_bert4keras():
    config = dict(cf.TINY, num_hidden_layers=2)
    names = {layer.name for layer in build_transformer_model(config=config, with_mlm=True).layers}
    for name in ("Input-Token", "Input-Segment", "Embedding-Token", "Embedding-Segment", "Embedding-Position",
                 "Embedding-Norm", "Transformer-0-MultiHeadSelfAttention",
                 "Transformer-0-MultiHeadSelfAttention-Norm", "Transformer-1-FeedForward",
                 "Transformer-1-FeedForward-Norm", "MLM-Dense", "MLM-Norm", "MLM-Bias", "MLM-Activation"):
        assert name in names
    v2 = {layer.name for layer in build_transformer_model(config=config, model="roformer_v2", with_mlm=True).layers}
    assert "Embedding-Position" not in v2 and "Output-MLM-Activation" in v2 and "MLM-Dense" not in v2


def test_random_init_is_seeded_and_distinct():
    def kernels(seed):
        model = build_transformer_model(config=cf.TINY, model="roformer", seed=seed)
        attention = model.get_layer("Transformer-1-MultiHeadSelfAttention")
        return [np.asarray(d.kernel) for d in (attention.query, attention.key, attention.value)], model

    (q, k, v), model = kernels(7)
    assert not np.allclose(q, k) and not np.allclose(k, v) and not np.allclose(q, v)
    first = model.get_layer("Transformer-0-MultiHeadSelfAttention").query.kernel
    assert not np.allclose(np.asarray(first), q)   # nor repeated across layers
    assert abs(q.std() - 0.02) < 0.004 and np.abs(q).max() <= 2 * 0.02 + 1e-6   # truncated normal
    np.testing.assert_array_equal(kernels(7)[0][0], q)
    assert not np.allclose(kernels(8)[0][0], q)
    assert not np.allclose(kernels(None)[0][0], kernels(None)[0][0])


def test_encoder_config_and_options():
    config = dict(cf.TINY, hidden_act="relu", initializer_range=0.05)
    model = build_transformer_model(config=config, model="roformer_v2")
    assert model.name == "roformer-v2" and build_transformer_model(config=cf.TINY, name="enc").name == "enc"
    assert model.config == EncoderConfig(family="roformer_v2", vocab_size=cf.TINY["vocab_size"], hidden_size=64,
                                         num_layers=cf.TINY["num_hidden_layers"], num_heads=4, head_size=16,
                                         intermediate_size=cf.TINY["intermediate_size"], initializer_range=0.05)
    assert build_transformer_model(config=cf.TINY, model="roberta").config.family == "bert"
    assert set(FAMILIES) == {"bert", "roformer", "roformer_v2"}
    no_dropout = build_transformer_model(config=cf.TINY, dropout_rate=0, attention_dropout_rate=0)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in no_dropout.layers)
    with pytest.raises(ValueError, match="missing vocab_size"):
        build_transformer_model(config={k: v for k, v in cf.TINY.items() if k != "vocab_size"})
    with pytest.raises(ValueError, match="hidden_act 'mish' is not supported"):
        build_transformer_model(config=dict(cf.TINY, hidden_act="mish"))


@pytest.mark.parametrize("family", cf.FAMILIES)
def test_fused_attention_equals_explicit(family):
    """ops.dot_product_attention at inference equals the explicit softmax path (eager and XLA predict). Head
    size 32: its 1/sqrt(d) is inexact, so the two paths do round differently."""
    config = dict(cf.TINY, num_attention_heads=2)
    token_ids, segment_ids = batch(config)
    keep = token_ids != 0
    fused = build_transformer_model(config=config, model=family, seed=5)
    explicit = cf.explicit_attention(build_transformer_model(config=config, model=family, seed=5))
    for run in (lambda m: m([token_ids, segment_ids]), lambda m: m.predict_on_batch([token_ids, segment_ids])):
        diff = np.abs(np.asarray(run(fused)) - np.asarray(run(explicit)))[keep].max()
        print(f"{family} fused vs explicit attention, hidden max abs diff {diff:.1e}")
        assert diff <= 1e-5


def test_attention_path_choice(monkeypatch):
    """Fused attention unless attention dropout is active (training, rate > 0) or ``fused=False``."""
    calls = []
    fused_op = keras.ops.dot_product_attention
    monkeypatch.setattr(keras.ops, "dot_product_attention", lambda *a, **k: calls.append(1) or fused_op(*a, **k))
    x = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")
    mask = np.ones((2, 1, 1, 5), bool)
    for dropout, fused, training, expected in [(0.1, None, False, 1), (0.1, None, True, 0), (0.0, None, True, 1),
                                               (0.1, False, False, 0), (0.0, False, True, 0)]:
        calls.clear()
        SelfAttention(2, 4, dropout=dropout, fused=fused)(x, mask, training=training)
        assert len(calls) == expected, (dropout, fused, training)


def test_attention_dropout_path(oracle):
    """Training with attention dropout drops out; at rate 0 the explicit path equals inference."""
    config_path, checkpoint, _ = oracle["roformer", "tiny"]
    model = build_transformer_model(config_path, checkpoint, model="roformer", dropout_rate=0,
                                    attention_dropout_rate=0.5, seed=3)
    token_ids, segment_ids = batch(cf.family_config("roformer", "tiny"))
    keep = token_ids != 0
    inference = np.asarray(model([token_ids, segment_ids], training=False))
    dropped = np.asarray(model([token_ids, segment_ids], training=True))
    assert np.abs(dropped - inference)[keep].max() > 1e-2
    for i in range(2):
        model.get_layer(f"Transformer-{i}-MultiHeadSelfAttention").dropout_layer.rate = 0.0
    explicit = np.asarray(model([token_ids, segment_ids], training=True))
    assert np.abs(explicit - inference)[keep].max() <= 1e-5


# measured on the tiny BERT: float16 hidden 3.8e-3, probs 9.7e-4; bfloat16 hidden 3.3e-2, probs 6.6e-3
@pytest.mark.parametrize("policy,tolerance", [("mixed_float16", 0.02), ("mixed_bfloat16", 0.1)])
def test_mixed_precision_close_to_float32(oracle, policy, tolerance):
    config_path, checkpoint, expected = oracle["bert", "tiny"]
    token_ids, segment_ids = batch(cf.family_config("bert", "tiny"))
    keep = token_ids != 0
    model = build_transformer_model(config_path, checkpoint, model="bert", with_mlm=True, dtype=policy)
    outputs = {k: np.asarray(v, dtype=np.float32) for k, v in cf.probe(model)([token_ids, segment_ids]).items()}
    assert model.output.dtype == "float32"   # the softmax runs in float32
    diffs = {name: np.abs(ours - expected[name])[keep].max() for name, ours in outputs.items()}
    print(f"{policy} max abs diff vs float32 bert4keras: {diffs}")
    assert np.isfinite(outputs["hidden"]).all() and diffs["hidden"] <= tolerance, diffs
    assert diffs["probs"] <= tolerance / 5, diffs
