"""Span heads for reading comprehension (cmrc2018) and NER (cluener), and the mapping back to characters.

``GlobalPointer`` scores every (start, end) token pair at once: a Dense gives each position a query and a
key per head, both rotated by position (``clue.layers.apply_rotary``), and the score of a pair is
query(start) . key(end) / sqrt(head_size). Pairs with end < start or a position outside ``span_mask`` get
-1e12. cmrc2018 uses one head and a softmax over all pairs (one answer per window, [CLS]-[CLS] when the
window has none); cluener one head per entity type and the multi-label loss (every span scored above 0 is
an entity), RoFormerV2's recipe an ``EfficientGlobalPointer`` (one query and key shared by the heads).
"""

import keras
import numpy as np
from keras import ops

from clue.batching import Batches, sequence_padding
from clue.layers import apply_rotary, head_initializer, reseeded, sinusoidal_positions
from clue.layers import kernel_initializer as truncated_normal

register = keras.saving.register_keras_serializable(package="clue")
NEG = -1e12   # score of a pair that can never be a span (float32: the logits are cast up first)


@register
class GlobalPointer(keras.layers.Layer):
    """(hidden (batch, len, width), span_mask (batch, len)) -> scores (batch, heads, len, len).

    ``kernel_initializer`` (a Keras initializer) defaults to a truncated normal of std ``initializer_range``.
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
        return keras.layers.Dense(units, use_bias=self.use_bias, name=name, dtype=self.dtype_policy,
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


def span_model(encoder, heads, seed=None, efficient=False):
    """encoder + GlobalPointer (``efficient``: EfficientGlobalPointer), kernels initialised like the encoder;
    inputs [token_ids, segment_ids, span_mask], output (batch, heads, len, len)."""
    from clue.models import encoder_info

    info = encoder_info(encoder)
    span_mask = keras.Input((None,), dtype="int32", name="span_mask")
    pointer = EfficientGlobalPointer if efficient else GlobalPointer
    scores = pointer(heads, info["head_size"], use_bias=False, name="global_pointer",
                     kernel_initializer=head_initializer(info, seed))(encoder.outputs[0], span_mask)
    return keras.Model([*encoder.inputs, span_mask], scores, name=f"{encoder.name}_spans")


# ---------------------------------------------------------------------------------------------------------
# Characters <-> tokens


def char_spans(tokenizer, text, maxlen=None):
    """The text's WordPiece ids (no [CLS]/[SEP]) and each token's (first, last) character index."""
    tokens = tokenizer.tokenize(text)[1:-1]
    if maxlen is not None:
        tokens = tokens[:maxlen]
    spans = [(chars[0], chars[-1]) if chars else None for chars in tokenizer.rematch(text, tokens)]
    ids = tokenizer.tokens_to_ids(tokens)
    keep = [i for i, s in enumerate(spans) if s is not None]   # a literal "[xxx]" in the text maps nowhere
    return [ids[i] for i in keep], [spans[i] for i in keep]


def token_span(spans, start, end):
    """Token indices (first, last) covering characters start..end (inclusive), or None when none do."""
    inside = [i for i, (a, b) in enumerate(spans) if b >= start and a <= end]
    return (inside[0], inside[-1]) if inside else None


NBEST = 20   # spans kept per cmrc2018 question for a seeds' ensemble (as BERT's run_squad n_best_size)


def top_spans(table, k=NBEST):
    """[(start, end, score)] of the ``k`` highest-scoring allowed pairs of a (len, len) score table, best
    first (ties: the first in row-major order first); [CLS] (position 0) and masked pairs are never spans."""
    table = np.array(table, dtype="float32")
    table[0, :] = table[:, 0] = -np.inf
    flat = table.ravel()
    allowed = np.flatnonzero(flat > NEG / 2)
    if len(allowed) > k:
        allowed = allowed[np.argpartition(-flat[allowed], k - 1)[:k]]
    allowed = allowed[np.lexsort((allowed, -flat[allowed]))]
    return [(*divmod(int(i), table.shape[1]), float(flat[i])) for i in allowed]


def top_listed(found, k=NBEST):
    """(the ``k`` best of ``found`` [(start, end, score)] with a finite score, best first, ties in their
    order; the score of the next one, or -inf when there is none)."""
    ranked = sorted((f for f in found if np.isfinite(f[2])), key=lambda f: -f[2])
    return ranked[:k], ranked[k][2] if len(ranked) > k else -np.inf


# ---------------------------------------------------------------------------------------------------------
# cmrc2018: [CLS] question [SEP] context window [SEP], windows sliding over the context


def locate_answer(context, text, start):
    """(first, last) character of the answer in the context, or None when it is not there.

    ``answer_start`` is off by a character or two in a few CMRC2018 records (and -1 in some dev answers):
    the occurrence of the text nearest to it is taken instead.
    """
    if not text.strip():
        return None
    if start is not None and start >= 0 and context[start:start + len(text)] == text:
        return start, start + len(text) - 1
    found = [i for i in range(len(context)) if context.startswith(text, i)]
    if not found:
        return None
    best = min(found, key=lambda i: abs(i - (start if start is not None and start >= 0 else 0)))
    return best, best + len(text) - 1


def cmrc_windows(tokenizer, question, context, answer=None, maxlen=512, stride=128):
    """The windows of one question: dicts with ``token_ids``, ``span_mask`` (1 on [CLS] and the context
    tokens), ``label`` (the answer's (start, end) in the window, (0, 0) for [CLS] when it is not inside)
    and ``first``/``offset`` (context token index of the window's first context position, and that
    position in the sequence). ``answer`` is (first, last) character or None. Windows start every
    ``stride`` context tokens, or every window length when that is shorter (no token is skipped)."""
    q_ids = tokenizer.encode(question, maxlen=maxlen // 2)[0]      # [CLS] question [SEP], at most half
    c_ids, c_spans = char_spans(tokenizer, context)
    room, offset = maxlen - len(q_ids) - 1, len(q_ids)
    target = token_span(c_spans, *answer) if answer is not None else None
    windows, first = [], 0
    while True:
        ids = c_ids[first:first + room]
        label = (0, 0)
        if target is not None and first <= target[0] and target[1] < first + room:
            label = (target[0] - first + offset, target[1] - first + offset)
        windows.append({"token_ids": q_ids + ids + [tokenizer.sep_id],
                        "span_mask": [1] + [0] * (offset - 1) + [1] * len(ids) + [0],
                        "label": label, "first": first, "offset": offset})
        if first + room >= len(c_ids):
            return windows, c_spans
        first += min(stride, room)


def window_chars(c_spans, window, start, end):
    """(first, last) character of the context covered by window positions start..end (positions of the
    whole sequence)."""
    return (c_spans[start - window["offset"] + window["first"]][0],
            c_spans[end - window["offset"] + window["first"]][1])


def cmrc_nbest(windows, tops, questions, k=NBEST):
    """Each question's ``k`` best character spans over its windows (``tops``: each window's ``top_spans``),
    a span found in several windows scored by its best window, as arrays for ``clue.predictions.Answers``:
    starts, ends (questions, k) inclusive characters (-1 where fewer), scores (descending, -inf where
    fewer), and bound: no unlisted span scores higher (the k-th score; -inf when every span is listed:
    a window with k or more allowed pairs alone lists k spans)."""
    best = [{} for _ in range(questions)]
    for window, found in zip(windows, tops):
        spans = best[window["question"]]
        for start, end, score in found:
            chars = window_chars(window["c_spans"], window, start, end)
            if score > spans.get(chars, -np.inf):
                spans[chars] = score
    starts, ends = np.full((questions, k), -1, np.int32), np.full((questions, k), -1, np.int32)
    scores, bound = np.full((questions, k), -np.inf, np.float32), np.full(questions, -np.inf, np.float32)
    for q, spans in enumerate(best):
        kept, _ = top_listed([(a, b, s) for (a, b), s in spans.items()], k)
        for i, (a, b, s) in enumerate(kept):
            starts[q, i], ends[q, i], scores[q, i] = a, b, s
        if len(kept) == k:
            bound[q] = kept[-1][2]
    return starts, ends, scores, bound


# ---------------------------------------------------------------------------------------------------------
# cluener: [CLS] text [SEP], one GlobalPointer head per entity type


def ner_example(tokenizer, text, entities=(), types=(), maxlen=256):
    """token_ids, span_mask and the gold spans [(type index, start, end)] in token positions.

    ``entities`` are (type, first, last character); an entity whose edges do not fall on token edges
    (rare: inside a Latin word) or past ``maxlen`` cannot be a span and is left out of the labels.
    """
    ids, where = char_spans(tokenizer, text, maxlen - 2)
    starts = {a: i + 1 for i, (a, _) in enumerate(where)}
    ends = {b: i + 1 for i, (_, b) in enumerate(where)}
    gold = [(types.index(kind), starts[a], ends[b]) for kind, a, b in entities if a in starts and b in ends]
    return {"token_ids": [tokenizer.cls_id] + ids + [tokenizer.sep_id],
            "span_mask": [0] + [1] * len(ids) + [0], "gold": gold, "spans": where}


def ner_labels(example, heads, length):
    """The dense (heads, length, length) 0/1 target of one example."""
    target = np.zeros((heads, length, length), dtype="float32")
    for kind, start, end in example["gold"]:
        target[kind, start, end] = 1
    return target


def pointer_table(scores):
    """The (heads, n(n+1)/2) scores of every pair start <= end of an example's n text tokens (positions
    1..n) from its (heads, len, len) table; n is read from the mask (text positions may pair with themselves)."""
    scores = np.asarray(scores)
    n = int((np.diagonal(scores[0]) > NEG / 2).sum())
    firsts, lasts = np.triu_indices(n)
    return scores[:, firsts + 1, lasts + 1]


def ner_decode(found, text, where, types):
    """CLUENER's label dict {type: {entity text: [[first, last], ...]}} from (type, start, end) token spans."""
    label = {}
    for kind, start, end in found:
        if not (1 <= start <= end <= len(where)):
            continue
        first, last = where[start - 1][0], where[end - 1][1]
        entity = text[first:last + 1]
        label.setdefault(types[kind], {}).setdefault(entity, []).append([int(first), int(last)])
    return label


# ---------------------------------------------------------------------------------------------------------
# Batches and prediction


class Collated(Batches):
    """``Batches``'s plan (shuffled by seed and epoch, ``order``) with the task's own ``collate(examples)``
    building each batch, for examples that are not flat sequences (span targets, choices of a question)."""

    def __init__(self, examples, collate, batch_size, shuffle=False, seed=0):
        super().__init__(examples, batch_size=batch_size, shuffle=shuffle, seed=seed)
        self.examples, self.collate = examples, collate

    def __getitem__(self, index):
        return self.collate([self.examples[i] for i in self.batches[index]])


def span_inputs(examples):
    """(token_ids, segment_ids, span_mask) padded to the longest example."""
    token_ids = sequence_padding([e["token_ids"] for e in examples])
    return token_ids, np.zeros_like(token_ids), sequence_padding([e["span_mask"] for e in examples])


def window_batch(windows):
    """cmrc2018 windows -> (inputs, (batch, 2) gold start and end)."""
    return span_inputs(windows), np.array([w["label"] for w in windows], dtype="int32")


def ner_batch(examples, heads):
    """cluener examples -> (inputs, dense (batch, heads, len, len) targets), built per batch because
    targets for a whole training set would take gigabytes."""
    x = span_inputs(examples)
    return x, np.stack([ner_labels(e, heads, x[0].shape[1]) for e in examples])


def predict_each(model, batches, reduce):
    """``reduce(scores of one example)`` for every example, in example order. Batches are reduced as they
    come: the (len, len) score tables of a whole dev set would not fit in memory."""
    results = []
    for index in range(len(batches)):
        x = batches[index][0]
        results.extend(reduce(row) for row in np.asarray(model.predict_on_batch(x)))
    ordered = [None] * len(results)
    for position, example in enumerate(batches.order):
        ordered[example] = results[position]
    return ordered
