"""Task heads on the encoder's last hidden states, and their losses. Each builder takes the encoder (it
carries its family, sizes and initializer range as ``encoder.config``) and returns the whole model; head
kernels are initialised like the encoder (``clue.layers.head_initializer``: RoFormerV2 has its own).

- ``classifier``: pool the last layer ([CLS] by default, masked mean or max as options) -> softmax Dense,
  trained with sparse categorical cross-entropy (the seven classification tasks).
- ``span_scorer``: a ``GlobalPointer`` (or, RoFormerV2's CLUENER recipe, an ``EfficientGlobalPointer``)
  scoring every (start, end) token pair; ``span_crossentropy`` (one answer per sequence: cmrc2018) or
  ``span_multilabel_crossentropy`` (any number of spans per head: cluener).
- ``choice_scorer``: each choice encoded on its own, pooled, scored by a Dense(1), softmax over the choices
  of a question (c3, chid), trained with sparse categorical cross-entropy.
"""

import keras
from keras import ops

from clue.layers import TokenDense, apply_rotary, head_initializer, reseeded, sinusoidal_positions
from clue.layers import kernel_initializer as truncated_normal

register = keras.saving.register_keras_serializable(package="clue")
NEG = -1e12   # score of a pair that can never be a span (float32: the logits are cast up first)


# ---------------------------------------------------------------------------------------------------------
# Classification


@register
class Pooling(keras.layers.Layer):
    """(batch, len, hidden) -> (batch, hidden): the first ([CLS]) vector, or the mean / max over the
    non-padding positions (token id != 0)."""

    def __init__(self, mode="cls", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("cls", "avg", "max"):
            raise ValueError(f"pooling must be 'cls', 'avg' or 'max', got {mode!r}")
        self.mode = mode

    def call(self, hidden, token_ids):
        if self.mode == "cls":
            return hidden[:, 0]
        mask = ops.expand_dims(ops.cast(ops.not_equal(token_ids, 0), hidden.dtype), -1)
        if self.mode == "avg":
            return ops.sum(hidden * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)
        # max: padding gets a large negative (within float16 range) so it never wins
        return ops.max(hidden - (1.0 - mask) * 1e4, axis=1)

    def compute_output_shape(self, hidden_shape, token_ids_shape=None):
        return (hidden_shape[0], hidden_shape[2])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def classifier(encoder, num_classes, pooling="cls", seed=None):
    """encoder -> pooling -> Dense softmax; the model takes the encoder's [token_ids, segment_ids]."""
    vector = Pooling(pooling, name="pooling")(encoder.outputs[0], encoder.inputs[0])
    probs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="classifier",
                               kernel_initializer=head_initializer(encoder.config, seed))(vector)
    return keras.Model(encoder.inputs, probs, name=f"{encoder.name}_classifier")


# ---------------------------------------------------------------------------------------------------------
# Spans: cmrc2018 answers, cluener entities


@register
class GlobalPointer(keras.layers.Layer):
    """(hidden (batch, len, width), span_mask (batch, len)) -> scores (batch, heads, len, len).

    A Dense gives each position a query and a key per head, both rotated by position (RoFormer's rotary
    embedding); the score of a pair is query(start) . key(end) / sqrt(head_size). Pairs with end < start or
    a position outside ``span_mask`` get ``NEG``. ``kernel_initializer`` (a Keras initializer) defaults to a
    truncated normal of std ``initializer_range``.
    """

    def __init__(self, heads, head_size, use_bias=True, initializer_range=0.02, seed=None, kernel_initializer=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.heads, self.head_size, self.use_bias = heads, head_size, use_bias
        self.initializer_range, self.seed = initializer_range, seed
        self.kernel_initializer = (truncated_normal(initializer_range, seed) if kernel_initializer is None
                                   else keras.initializers.get(kernel_initializer))
        self.make_dense()

    def make_dense(self):
        self.dense = self._dense(self.heads * 2 * self.head_size, "dense", self.kernel_initializer)

    def _dense(self, units, name, initializer):
        return TokenDense(units, use_bias=self.use_bias, name=name, dtype=self.dtype_policy,
                          kernel_initializer=initializer)

    def build(self, hidden_shape, span_mask_shape=None):
        self.dense.build(hidden_shape)

    def call(self, hidden, span_mask):
        batch, length = ops.shape(hidden)[0], ops.shape(hidden)[1]
        x = ops.reshape(self.dense(hidden), (batch, length, self.heads, 2, self.head_size))
        cos, sin = sinusoidal_positions(length, self.head_size)
        starts, ends = apply_rotary(x[..., 0, :], cos, sin), apply_rotary(x[..., 1, :], cos, sin)
        scores = ops.einsum("bmhd,bnhd->bhmn", ops.cast(starts, "float32"), ops.cast(ends, "float32"))
        return mask_pairs(scores / self.head_size ** 0.5, span_mask)

    def compute_output_shape(self, hidden_shape, span_mask_shape=None):
        return (hidden_shape[0], self.heads, hidden_shape[1], hidden_shape[1])

    def get_config(self):
        return {**super().get_config(), "heads": self.heads, "head_size": self.head_size,
                "use_bias": self.use_bias, "initializer_range": self.initializer_range, "seed": self.seed,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}


@register
class EfficientGlobalPointer(GlobalPointer):
    """GlobalPointer whose heads share one query and key (bert4keras's EfficientGlobalPointer, RoFormerV2's
    CLUENER head): a Dense gives each position a query and a key (interleaved: even and odd features),
    rotated by position; a second Dense on that output gives each head a bias per position, the even
    outputs for the pair's end and the odd ones for its start, and the score of head h is
    query(start) . key(end) / sqrt(head_size) + (end bias + start bias) / 2."""

    def make_dense(self):
        self.dense = self._dense(2 * self.head_size, "dense", self.kernel_initializer)
        self.bias_dense = self._dense(2 * self.heads, "bias_dense", reseeded(self.kernel_initializer, 1))

    def build(self, hidden_shape, span_mask_shape=None):
        self.dense.build(hidden_shape)
        self.bias_dense.build((*hidden_shape[:-1], 2 * self.head_size))

    def call(self, hidden, span_mask):
        x = self.dense(hidden)
        cos, sin = sinusoidal_positions(ops.shape(hidden)[1], self.head_size)
        starts, ends = apply_rotary(x[..., 0::2], cos, sin), apply_rotary(x[..., 1::2], cos, sin)
        scores = ops.einsum("bmd,bnd->bmn", ops.cast(starts, "float32"), ops.cast(ends, "float32"))
        bias = ops.transpose(ops.cast(self.bias_dense(x), "float32"), (0, 2, 1)) / 2   # (batch, 2 * heads, len)
        scores = scores[:, None] / self.head_size ** 0.5 + bias[:, 0::2, None, :] + bias[:, 1::2, :, None]
        return mask_pairs(scores, span_mask)


def mask_pairs(scores, span_mask):
    """``scores`` (batch, heads, len, len) with NEG where end < start or either position is outside
    ``span_mask``."""
    keep = ops.cast(span_mask, "bool")
    positions = ops.arange(ops.shape(scores)[-1])
    ordered = positions[:, None] <= positions[None, :]          # end >= start
    allowed = keep[:, None, :, None] & keep[:, None, None, :] & ordered[None, None]
    return ops.where(allowed, scores, NEG)


def span_scorer(encoder, heads, seed=None, efficient=False):
    """encoder + GlobalPointer (``efficient``: EfficientGlobalPointer), one head per span type, the encoder's
    attention head size; inputs [token_ids, segment_ids, span_mask], output (batch, heads, len, len)."""
    span_mask = keras.Input((None,), dtype="int32", name="span_mask")
    pointer = EfficientGlobalPointer if efficient else GlobalPointer
    scores = pointer(heads, encoder.config.head_size, use_bias=False, name="global_pointer",
                     kernel_initializer=head_initializer(encoder.config, seed))(encoder.outputs[0], span_mask)
    return keras.Model([*encoder.inputs, span_mask], scores, name=f"{encoder.name}_spans")


@register
def span_crossentropy(y_true, y_pred):
    """One gold (start, end) per row, y_true (batch, 2); softmax cross-entropy over all pairs of head 0."""
    length = ops.shape(y_pred)[-1]
    y_true = ops.cast(ops.reshape(y_true, (-1, 2)), "int32")
    flat = ops.reshape(y_pred[:, 0], (ops.shape(y_pred)[0], -1))
    return keras.losses.sparse_categorical_crossentropy(y_true[:, 0] * length + y_true[:, 1], flat,
                                                        from_logits=True)


def multilabel_crossentropy(y_true, y_pred):
    """Multi-label softmax loss over the last axis: log(1 + sum_neg e^s) + log(1 + sum_pos e^-s).

    Positives are pushed above 0 and negatives below it, so 0 is the decision threshold.
    """
    y_true = ops.cast(y_true, y_pred.dtype)
    signed = (1 - 2 * y_true) * y_pred                 # -s for the positives, s for the negatives
    negatives = signed - y_true * 1e12
    positives = signed - (1 - y_true) * 1e12
    zero = ops.zeros_like(y_pred[..., :1])
    return (ops.logsumexp(ops.concatenate([negatives, zero], axis=-1), axis=-1)
            + ops.logsumexp(ops.concatenate([positives, zero], axis=-1), axis=-1))


@register
def span_multilabel_crossentropy(y_true, y_pred):
    """y_true and y_pred (batch, heads, len, len): the multi-label loss per head, averaged over heads."""
    shape = (ops.shape(y_pred)[0], ops.shape(y_pred)[1], -1)
    return ops.mean(multilabel_crossentropy(ops.reshape(y_true, shape), ops.reshape(y_pred, shape)), axis=-1)


# ---------------------------------------------------------------------------------------------------------
# Multiple choice: c3, chid


@register
class FoldChoices(keras.layers.Layer):
    """(batch, choices, len) -> (batch * choices, len): each choice becomes a sequence of its own."""

    def call(self, x):
        return ops.reshape(x, (-1, ops.shape(x)[-1]))

    def compute_output_shape(self, shape):
        return (None, shape[-1])


@register
class ChoiceSoftmax(keras.layers.Layer):
    """Scores (batch * choices, 1) and a (batch, choices) mask -> probabilities (batch, choices); padding
    choices (c3 questions have 2 to 4) get probability 0."""

    def call(self, scores, choice_mask):
        scores = ops.reshape(ops.cast(scores, "float32"), ops.shape(choice_mask))
        scores = ops.where(ops.cast(choice_mask, "bool"), scores, -1e9)
        return ops.softmax(scores, axis=-1)

    def compute_output_shape(self, scores_shape, choice_mask_shape):
        return choice_mask_shape


def choice_scorer(encoder, num_choices, pooling="cls", seed=None):
    """(batch, choices, len) token and segment ids and a (batch, choices) mask of the real choices ->
    encoder -> pooled vector -> Dense(1) per choice -> softmax over the choices."""
    token_ids = keras.Input((num_choices, None), dtype="int32", name="token_ids")
    segment_ids = keras.Input((num_choices, None), dtype="int32", name="segment_ids")
    choice_mask = keras.Input((num_choices,), dtype="int32", name="choice_mask")
    flat_tokens = FoldChoices(name="fold_tokens")(token_ids)
    hidden = encoder([flat_tokens, FoldChoices(name="fold_segments")(segment_ids)])
    vector = Pooling(pooling, name="pooling")(hidden, flat_tokens)
    init = head_initializer(encoder.config, seed)
    scores = keras.layers.Dense(1, kernel_initializer=init, name="choice_score")(vector)
    probs = ChoiceSoftmax(name="choices")(scores, choice_mask)
    return keras.Model([token_ids, segment_ids, choice_mask], probs, name=f"{encoder.name}_choices")
