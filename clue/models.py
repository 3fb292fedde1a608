"""One Keras 3 encoder for BERT, RoFormer and RoFormerV2, equal to bert4keras 0.11.5.

    model = build_transformer_model("bert_config.json", "bert_model.ckpt", model="roformer")
    hidden = model.predict([token_ids, segment_ids])          # (batch, length, hidden_size)

The three families differ in a few switches (``FAMILIES``); the layer names are bert4keras's, so code and
habits written for it carry over (``model.get_layer("Transformer-11-FeedForward-Norm")``).
"""

from dataclasses import dataclass
from numbers import Real

import keras

from clue.checkpoints import CheckpointError, load_weights, stored_sizes
from clue.layers import (Bias, Dropout, FeedForward, LayerNorm, PaddingMask, PositionEmbedding, SelfAttention,
                         TokenDense, TokenEmbedding, activation, kernel_initializer)
from clue.presets import ConfigError, read_json

__all__ = ["FAMILIES", "EncoderConfig", "build_transformer_model", "build_from_spec", "kernel_initializer"]

# What sets the families apart, as bert4keras builds them. bert4keras passes epsilon=1e-12 to BERT's norms
# (and to every MLM-Norm); RoFormer's body norms keep the Keras default 1e-7.
FAMILIES = {
    "bert": dict(positions="learned", use_bias=True, norm=dict(epsilon=1e-12), mlm_transform=True),
    "roformer": dict(positions="rotary", use_bias=True, norm=dict(epsilon=1e-7), mlm_transform=True),
    "roformer_v2": dict(positions="rotary", use_bias=False, mlm_transform=False,
                        norm=dict(epsilon=1e-7, zero_mean=False, scale=False, center=False)),
}
ALIASES = {"roberta": "bert"}
REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")


@dataclass(frozen=True)
class EncoderConfig:
    """What an encoder is, carried by it as ``encoder.config`` so that task heads read their sizes and
    initializer from it (``encoder.config.head_size``)."""

    family: str                  # a key of FAMILIES
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    head_size: int
    intermediate_size: int
    initializer_range: float


def family_of(model):
    name = ALIASES.get(str(model).lower(), str(model).lower())
    if name not in FAMILIES:
        raise ConfigError(f"unknown model family {model!r}: expected one of {', '.join(FAMILIES)}")
    return name


# The entries the builder reads beyond REQUIRED; any other key (HF's model_type, pooler_*, directionality,
# ...) is left alone, as bert4keras does.
OPTIONAL_SIZES = ("type_vocab_size", "max_position_embeddings", "attention_head_size", "embedding_size")
RATES = ("hidden_dropout_prob", "attention_probs_dropout_prob")


def read_config(config_path=None, config=None, source=None):
    """The encoder config: ``config_path`` (bert_config.json) updated by the ``config`` dict, whose file
    ``source`` names in messages. The entries the builder reads are checked (present, of their type); a
    ConfigError names the file and the key."""
    merged = read_json(config_path) if config_path is not None else {}
    merged.update(config or {})
    where = config_path or source or "the config dict"
    missing = [key for key in REQUIRED if merged.get(key) is None]
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}")
    for key in REQUIRED + tuple(k for k in OPTIONAL_SIZES if k in merged):
        value = merged[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{where}: {key} must be a positive integer, got {value!r}")
    for key in RATES:
        value = merged.get(key, 0.0)
        if not _is_number(value) or not 0 <= value < 1:
            raise ConfigError(f"{where}: {key} must be a number from 0 to below 1, got {value!r}")
    if not _is_number(merged.get("initializer_range", 0.02)) or merged.get("initializer_range", 0.02) <= 0:
        raise ConfigError(f"{where}: initializer_range must be a positive number, got {merged['initializer_range']!r}")
    try:
        activation(merged.get("hidden_act", "gelu"))
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from None
    if merged.get("embedding_size", merged["hidden_size"]) != merged["hidden_size"]:
        raise ConfigError(f"{where}: embedding_size != hidden_size (ALBERT-style factorised "
                          "embeddings) is not supported")
    return merged


def _is_number(value):
    return isinstance(value, Real) and not isinstance(value, bool)


def build_transformer_model(config_path=None, checkpoint_path=None, model="bert", with_mlm=False, config=None,
                            dropout_rate=None, attention_dropout_rate=None, dtype=None, seed=None,
                            name=None):
    """Build the encoder and load ``checkpoint_path`` when given (see ``clue.checkpoints.load_weights``).

    Inputs ``[token_ids, segment_ids]`` (int, padding id 0); output the last hidden states, or with
    ``with_mlm`` (True: softmax, or an activation name such as "linear") only the MLM output, as bert4keras.
    Dropout rates default to the config's; ``dtype`` is a Keras dtype policy ("mixed_bfloat16", ...);
    ``seed`` makes random init reproducible (every kernel still gets its own stream).
    """
    family = family_of(model)
    switch = FAMILIES[family]
    cfg = read_config(config_path, config)
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    head_size = cfg.get("attention_head_size", hidden // heads)
    std = cfg.get("initializer_range", 0.02)
    act = activation(cfg.get("hidden_act", "gelu"))
    dropout = cfg.get("hidden_dropout_prob", 0.0) if dropout_rate is None else dropout_rate
    attention_dropout = (cfg.get("attention_probs_dropout_prob", 0.0) if attention_dropout_rate is None
                         else attention_dropout_rate)
    policy = keras.dtype_policies.get(dtype) if dtype is not None else keras.config.dtype_policy()

    counter = iter(range(0, 1 << 30, 8))  # each layer gets 8 seeds of its own

    def layer_seed():
        step = next(counter)
        return None if seed is None else seed + step

    def dropout_layer(x, rate, layer_name):
        if not rate:
            return x
        return Dropout(rate, seed=layer_seed(), name=layer_name, dtype=policy)(x)

    def norm(x, layer_name, epsilon=None):
        options = dict(switch["norm"], **({} if epsilon is None else {"epsilon": epsilon}))
        return LayerNorm(name=layer_name, dtype=policy, **options)(x)

    token_ids = keras.Input((None,), dtype="int32", name="Input-Token")
    segment_ids = keras.Input((None,), dtype="int32", name="Input-Segment")

    # Embeddings
    token_embedding = TokenEmbedding(cfg["vocab_size"], hidden, std, layer_seed(), name="Embedding-Token",
                                     dtype=policy)
    x = token_embedding(token_ids)
    segments = keras.layers.Embedding(cfg.get("type_vocab_size", 2), hidden, name="Embedding-Segment",
                                      embeddings_initializer=kernel_initializer(std, layer_seed()),
                                      dtype=policy)(segment_ids)
    x = keras.layers.Add(name="Embedding-Token-Segment", dtype=policy)([x, segments])
    if switch["positions"] == "learned":
        x = PositionEmbedding(cfg.get("max_position_embeddings", 512), std, layer_seed(),
                              name="Embedding-Position", dtype=policy)(x)
    if family == "roformer_v2":   # bert4keras drops out before this norm, after it elsewhere
        x = norm(dropout_layer(x, dropout, "Embedding-Dropout"), "Embedding-Norm")
    else:
        x = dropout_layer(norm(x, "Embedding-Norm"), dropout, "Embedding-Dropout")
    padding_mask = PaddingMask(name="Attention-Mask")(token_ids)

    # Transformer blocks, post-norm: x = norm(x + drop(f(x)))
    for i in range(cfg["num_hidden_layers"]):
        block = f"Transformer-{i}-MultiHeadSelfAttention"
        y = SelfAttention(heads, head_size, switch["use_bias"],
                          rotary=switch["positions"] == "rotary", dropout=attention_dropout,
                          initializer_range=std, seed=layer_seed(), name=block, dtype=policy)(x, padding_mask)
        y = dropout_layer(y, dropout, f"{block}-Dropout")
        x = norm(keras.layers.Add(name=f"{block}-Add", dtype=policy)([x, y]), f"{block}-Norm")

        block = f"Transformer-{i}-FeedForward"
        y = FeedForward(cfg["intermediate_size"], act, switch["use_bias"], std, layer_seed(), name=block,
                        dtype=policy)(x)
        y = dropout_layer(y, dropout, f"{block}-Dropout")
        x = norm(keras.layers.Add(name=f"{block}-Add", dtype=policy)([x, y]), f"{block}-Norm")

    outputs = x
    if with_mlm:
        mlm_activation = "softmax" if with_mlm is True else with_mlm
        if switch["mlm_transform"]:   # BERT / RoFormer: dense + act + norm, tied embeddings, bias
            x = TokenDense(hidden, activation=act, name="MLM-Dense", dtype=policy,
                           kernel_initializer=kernel_initializer(std, layer_seed()))(x)
            x = norm(x, "MLM-Norm", epsilon=1e-12)
            x = Bias(name="MLM-Bias", dtype=policy)(token_embedding(x, reverse=True))
            outputs = keras.layers.Activation(mlm_activation, name="MLM-Activation", dtype="float32")(x)
        else:                         # RoFormerV2: tied embeddings only
            x = dropout_layer(x, dropout, "Output-MLM-Dropout")
            x = token_embedding(x, reverse=True)
            outputs = keras.layers.Activation(mlm_activation, name="Output-MLM-Activation", dtype="float32")(x)

    model = keras.Model([token_ids, segment_ids], outputs, name=name or family.replace("_", "-"))
    model.config = EncoderConfig(family, cfg["vocab_size"], hidden, cfg["num_hidden_layers"], heads, head_size,
                                 cfg["intermediate_size"], std)
    if checkpoint_path is not None:
        load_weights(model, checkpoint_path)
    return model


def spec_config(spec, vocab_size):
    """The checked encoder config of a ``clue.presets.ModelSpec`` (``vocab_size``, the tokenizer's, fills an
    inline config without one), read before anything is built: the vocabulary must fit the embeddings, and
    the checkpoint must have one word-embedding row per token and as many layers as the config. Errors name
    both files and both sizes."""
    config = dict(spec.config)
    config.setdefault("vocab_size", vocab_size)
    where = spec.config_path or spec.preset_path or "the config"
    config = read_config(config=config, source=where)
    vocab = spec.vocab_path or "the built-in vocabulary"
    sizes = stored_sizes(spec.checkpoint_path) if spec.checkpoint_path is not None else None
    if sizes is None:
        if vocab_size > config["vocab_size"]:
            raise ConfigError(f"{vocab}: {vocab_size} tokens, but {where} gives vocab_size {config['vocab_size']}"
                              f": the ids past it have no embedding")
        return config
    rows, layers = sizes
    checkpoint = spec.checkpoint_path
    if rows is not None and vocab_size != rows:
        raise CheckpointError(f"{vocab}: {vocab_size} tokens, but the word embeddings of {checkpoint} have {rows} "
                              f"rows: the vocabulary and the checkpoint are not of the same model")
    if rows is not None and config["vocab_size"] != rows:
        raise CheckpointError(f"{where}: vocab_size {config['vocab_size']}, but the word embeddings of "
                              f"{checkpoint} have {rows} rows")
    if config["num_hidden_layers"] != layers:
        raise CheckpointError(f"{where}: num_hidden_layers {config['num_hidden_layers']}, but {checkpoint} holds "
                              f"{layers} layers")
    return config


def build_from_spec(spec, vocab_size, **options):
    """Build the encoder a ``clue.presets.ModelSpec`` describes, once ``spec_config`` has checked it;
    ``vocab_size`` is the tokenizer's. Loads ``spec.checkpoint_path`` when set."""
    return build_transformer_model(config=spec_config(spec, vocab_size), checkpoint_path=spec.checkpoint_path,
                                   model=spec.family, **options)
