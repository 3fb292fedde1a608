"""Random checkpoints in the real file formats, and bert4keras's outputs on them.

No pretrained weights exist here, so the tests write their own: the variable names and shapes below are
those of Google's chinese_L-12_H-768_A-12 and ZhuiyiTechnology's RoFormer / RoFormerV2 checkpoints, saved
with the tf.compat.v1 Saver those were made with. The Hugging Face names are written out separately (not
derived from clue.checkpoints) so a mapping bug on either side shows.
"""

import json
from pathlib import Path

import numpy as np

from bert4keras_oracle import run_bert4keras

TINY = dict(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
            hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
            max_position_embeddings=64, type_vocab_size=2, initializer_range=0.02)
BASE = dict(TINY, vocab_size=21128, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
            intermediate_size=3072, max_position_embeddings=512)
FAMILIES = ("bert", "roformer", "roformer_v2")


def family_config(family, size):
    config = dict(TINY if size == "tiny" else BASE)
    if family == "roformer_v2":
        config["hidden_act"] = "relu"
    return config


def google_shapes(config, family, with_mlm=True, extras=True):
    """{TF variable name: shape} of a checkpoint of this family, as its authors published it."""
    h, i, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    biases = family != "roformer_v2"           # RoFormerV2 has no biases and weightless norms

    def dense(name, shape):
        return {f"{name}/kernel": shape, **({f"{name}/bias": shape[1:]} if biases else {})}

    def norm(name):
        return {f"{name}/gamma": (h,), f"{name}/beta": (h,)} if biases else {}

    shapes = {"bert/embeddings/word_embeddings": (v, h),
              "bert/embeddings/token_type_embeddings": (config["type_vocab_size"], h)}
    if family == "bert":
        shapes["bert/embeddings/position_embeddings"] = (config["max_position_embeddings"], h)
    shapes.update(norm("bert/embeddings/LayerNorm"))
    for n in range(config["num_hidden_layers"]):
        p = f"bert/encoder/layer_{n}/"
        for part in ("query", "key", "value"):
            shapes.update(dense(p + f"attention/self/{part}", (h, h)))
        shapes.update(dense(p + "attention/output/dense", (h, h)))
        shapes.update(norm(p + "attention/output/LayerNorm"))
        shapes.update(dense(p + "intermediate/dense", (h, i)))
        shapes.update(dense(p + "output/dense", (i, h)))
        shapes.update(norm(p + "output/LayerNorm"))
    if with_mlm and biases:
        shapes.update(dense("cls/predictions/transform/dense", (h, h)))
        shapes.update(norm("cls/predictions/transform/LayerNorm"))
        shapes["cls/predictions/output_bias"] = (v,)
    if extras and biases:   # in the published files, unused by the encoder
        shapes.update(dense("bert/pooler/dense", (h, h)))
        shapes.update({"cls/seq_relationship/output_weights": (2, h), "cls/seq_relationship/output_bias": (2,)})
    return shapes


def random_variables(shapes, seed=0):
    """Values with some spread (kernels ~ 1/sqrt(fan_in)), so attention is far from uniform and a wrong
    rotary pairing, mask or norm moves the outputs well past the tolerance."""
    rng = np.random.default_rng(seed)
    values = {}
    for name, shape in shapes.items():
        if name.endswith("/gamma"):
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith(("/beta", "/bias", "output_bias")):
            value = 0.1 * rng.standard_normal(shape)
        elif name.endswith("_embeddings"):
            value = 2.0 / np.sqrt(shape[1]) * rng.standard_normal(shape)   # MLM logits of a few units
        else:
            value = rng.standard_normal(shape) / np.sqrt(shape[0])
        values[name] = value.astype(np.float32)
    return values


def write_tf_checkpoint(prefix, variables):
    """Save {name: array} as a TF1 checkpoint (prefix.index + prefix.data-*), as Google's were saved."""
    import tensorflow as tf

    with tf.Graph().as_default():
        feeds, tf_vars = {}, []
        for name, value in variables.items():
            placeholder = tf.compat.v1.placeholder(tf.as_dtype(value.dtype), value.shape)
            tf_vars.append(tf.compat.v1.Variable(placeholder, name=name))
            feeds[placeholder] = value
        saver = tf.compat.v1.train.Saver(tf_vars)
        with tf.compat.v1.Session() as session:
            session.run([v.initializer for v in tf_vars], feeds)
            saver.save(session, str(prefix), write_meta_graph=False)
    return Path(prefix)


HF_RENAMES = [  # Google TF name pieces -> Hugging Face BertModel / RoFormerModel key pieces
    ("bert/", ""), ("layer_", "layer."), ("/", "."), ("LayerNorm.gamma", "LayerNorm.weight"),
    ("LayerNorm.beta", "LayerNorm.bias"), ("kernel", "weight"),
]


def to_hf(variables, prefix=""):
    """The same weights under HF keys; torch Linear kernels are (out, in)."""
    hf = {}
    for name, value in variables.items():
        if name.startswith(("cls/seq_relationship", "bert/pooler")):
            continue
        if name == "cls/predictions/output_bias":
            hf["cls.predictions.bias"] = value
            continue
        key = name
        for old, new in HF_RENAMES:
            key = key.replace(old, new)
        if key.endswith("_embeddings"):
            key += ".weight"
        hf[(prefix if not key.startswith("cls.") else "") + key] = \
            np.ascontiguousarray(value.T) if name.endswith("/kernel") else value
    return hf


def make_checkpoint(folder, family, size, seed=0):
    """Write bert_config.json + bert_model.ckpt of a family; returns (config_path, ckpt_prefix, variables)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = family_config(family, size)
    config_path = folder / "bert_config.json"
    config_path.write_text(json.dumps(config, indent=2))
    variables = random_variables(google_shapes(config, family), seed)
    prefix = write_tf_checkpoint(folder / "bert_model.ckpt", variables)
    return config_path, prefix, variables


def probe(model):
    """A model with dict outputs: the last hidden states and, when ``model`` has the MLM head, its logits
    (before the activation) and probabilities."""
    import keras

    last = [layer for layer in model.layers if layer.name.endswith("-FeedForward-Norm")][-1]
    outputs = {"hidden": last.output}
    if model.layers[-1].name.endswith("MLM-Activation"):
        outputs.update(logits=model.layers[-1].input, probs=model.output)
    return keras.Model(model.inputs, outputs)


def explicit_attention(model):
    """``model`` with every attention layer on the spelled-out softmax path (the fused one is the default)."""
    from clue.layers import SelfAttention

    for layer in model.layers:
        if isinstance(layer, SelfAttention):
            layer.fused = False
    return model


def random_batch(vocab_size, lengths, seed=0):
    """Padded token ids (id 0 = padding, ids from 1) and segment ids using both 0 and 1."""
    rng = np.random.default_rng(seed)
    width = max(lengths)
    token_ids = np.zeros((len(lengths), width), np.int32)
    segment_ids = np.zeros((len(lengths), width), np.int32)
    for row, length in enumerate(lengths):
        token_ids[row, :length] = rng.integers(1, vocab_size, length)
        segment_ids[row, length // 2:length] = 1
    return token_ids, segment_ids


ORACLE = r'''
import json, sys
import numpy as np
from bert4keras.models import build_transformer_model
from bert4keras.backend import keras, K

for job in json.load(open(sys.argv[1])):
    K.clear_session()
    bert = build_transformer_model(job["config"], job["checkpoint"], model=job["family"], with_mlm=True)
    last = "Transformer-%d-FeedForward-Norm" % (json.load(open(job["config"]))["num_hidden_layers"] - 1)
    probs = bert.layers[-1]
    model = keras.Model(bert.inputs, [bert.get_layer(last).output, probs.input, probs.output])
    data = np.load(job["inputs"])
    # called eagerly, op by op: graph mode would let grappler fuse ops differently for each side
    outputs = model([data["token_ids"].astype("float32"), data["segment_ids"].astype("float32")])
    np.savez(job["output"], **dict(zip(["hidden", "logits", "probs"], [o.numpy() for o in outputs])))
'''


def bert4keras_outputs(jobs, folder):
    """Run bert4keras once on every job {config, checkpoint, family, token_ids, segment_ids}; returns a list
    of dicts hidden / logits / probs (MLM before and after its softmax)."""
    folder = Path(folder)
    spec = []
    for n, job in enumerate(jobs):
        inputs, output = folder / f"inputs_{n}.npz", folder / f"bert4keras_{n}.npz"
        np.savez(inputs, token_ids=job["token_ids"], segment_ids=job["segment_ids"])
        spec.append(dict(config=str(job["config"]), checkpoint=str(job["checkpoint"]), family=job["family"],
                         inputs=str(inputs), output=str(output)))
    (folder / "jobs.json").write_text(json.dumps(spec))
    run_bert4keras(ORACLE, folder / "jobs.json")
    return [dict(np.load(job["output"])) for job in spec]
