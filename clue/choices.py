"""Multiple choice (c3, chid): every (context, choice) pair is encoded on its own and scored by the encoder's
pooled vector and a Dense(1); a softmax over the choices of a question gives the answer.

The model takes (batch, choices, len) token and segment ids plus a (batch, choices) mask of the real
choices (c3 questions have 2 to 4; padding choices get probability 0). chid adds the Hungarian assignment:
the blanks of one line share their 10 candidates and never take the same one.
"""

import itertools
import re

import keras
import numpy as np
from keras import ops
from scipy.optimize import linear_sum_assignment

from clue.batching import truncate_sequences
from clue.spans import Collated  # noqa: F401  (the task scripts batch choices with it)

register = keras.saving.register_keras_serializable(package="clue")


@register
class FoldChoices(keras.layers.Layer):
    """(batch, choices, len) -> (batch * choices, len): each choice becomes a sequence of its own."""

    def call(self, x):
        return ops.reshape(x, (-1, ops.shape(x)[-1]))

    def compute_output_shape(self, shape):
        return (None, shape[-1])


@register
class ChoiceSoftmax(keras.layers.Layer):
    """Scores (batch * choices, 1) and a (batch, choices) mask -> probabilities (batch, choices)."""

    def call(self, scores, choice_mask):
        scores = ops.reshape(ops.cast(scores, "float32"), ops.shape(choice_mask))
        scores = ops.where(ops.cast(choice_mask, "bool"), scores, -1e9)
        return ops.softmax(scores, axis=-1)

    def compute_output_shape(self, scores_shape, choice_mask_shape):
        return choice_mask_shape


def choice_model(encoder, num_choices, pooling="cls", seed=None):
    """encoder -> pooled vector -> Dense(1) per choice (initialised like the encoder) -> softmax over the
    choices."""
    from clue.heads import Pooling
    from clue.layers import head_initializer
    from clue.models import encoder_info

    token_ids = keras.Input((num_choices, None), dtype="int32", name="token_ids")
    segment_ids = keras.Input((num_choices, None), dtype="int32", name="segment_ids")
    choice_mask = keras.Input((num_choices,), dtype="int32", name="choice_mask")
    flat_tokens = FoldChoices(name="fold_tokens")(token_ids)
    hidden = encoder([flat_tokens, FoldChoices(name="fold_segments")(segment_ids)])
    vector = Pooling(pooling, name="pooling")(hidden, flat_tokens)
    init = head_initializer(encoder_info(encoder), seed)
    scores = keras.layers.Dense(1, kernel_initializer=init, name="choice_score")(vector)
    probs = ChoiceSoftmax(name="choices")(scores, choice_mask)
    return keras.Model([token_ids, segment_ids, choice_mask], probs, name=f"{encoder.name}_choices")


def choice_batch(examples, num_choices):
    """Examples (choices: up to ``num_choices`` token id lists, label index) -> the model's three inputs,
    every sequence padded to the longest and every question to ``num_choices`` choices, and the labels."""
    length = max(len(ids) for choices, _ in examples for ids in choices)
    tokens = np.zeros((len(examples), num_choices, length), dtype="int32")
    mask = np.zeros((len(examples), num_choices), dtype="int32")
    for i, (choices, _) in enumerate(examples):
        for j, ids in enumerate(choices):
            tokens[i, j, :len(ids)] = ids
            mask[i, j] = 1
    return (tokens, np.zeros_like(tokens), mask), np.array([label for _, label in examples], dtype="int32")


# ---------------------------------------------------------------------------------------------------------
# c3: [CLS] passage [SEP] question [SEP] choice [SEP]


def c3_choices(tokenizer, passage, question, choices, maxlen):
    """Token ids of each choice with its passage and question, cut from the longest part to ``maxlen``."""
    p_ids = tokenizer.encode(passage)[0]
    q_ids = tokenizer.encode(question)[0][1:]
    out = []
    for choice in choices:
        parts = [tokenizer.encode(choice)[0][1:], list(q_ids), list(p_ids)]
        truncate_sequences(maxlen, -2, *parts)     # the longest part loses its last tokens first
        out.append(parts[2] + parts[1] + parts[0])
    return out


# ---------------------------------------------------------------------------------------------------------
# chid: [CLS] candidate [SEP] left context [marker] right context [SEP], other blanks as 4 [MASK]; RoFormerV2's
# recipe: [CLS] left [SEP] candidate [SEP] right [SEP], other blanks as "_____"

BLANK = re.compile(r"#idiom\d{6}#")


def blank_contexts(tokenizer, passage, budget):
    """{blank key: token ids of the context around that blank}, at most ``budget`` tokens each.

    The blank itself becomes one marker token ([unused1] where the vocabulary has it, else [MASK]); the
    passage's other blanks become four [MASK] (an idiom's length); the window is centred on the blank and
    a short side gives its room to the other.
    """
    mask = tokenizer.token_to_id("[MASK]")
    marker = tokenizer.token_to_id("[unused1]")
    marker = mask if marker == tokenizer.token_to_id("[UNK]") else marker
    pieces = [tokenizer.encode(text)[0][1:-1] for text in BLANK.split(passage)]
    keys = BLANK.findall(passage)
    out = {}
    for i, key in enumerate(keys):
        left = [t for j in range(i + 1) for t in ([mask] * 4 if j else []) + pieces[j]]
        right = [t for j in range(i + 1, len(pieces)) for t in ([mask] * 4 if j > i + 1 else []) + pieces[j]]
        room = budget - 1
        n_right = min(len(right), max(room // 2, room - len(left)))
        n_left = min(len(left), room - n_right)
        out[key] = left[len(left) - n_left:] + [marker] + right[:n_right]
    return out


def chid_choices(tokenizer, candidates, context, maxlen):
    """Token ids of each candidate idiom followed by the blank's context, at most ``maxlen`` tokens."""
    out = []
    for candidate in candidates:
        ids = tokenizer.encode(candidate)[0]
        out.append(ids + context[:max(maxlen - len(ids) - 1, 0)] + [tokenizer.sep_id])
    return out


def blank_sides(passage, blank, budget):
    """(left, right): the text on each side of ``blank`` as RoFormerV2's clue/chid.py cuts it, the passage's
    other blanks written "_____", then one character at a time off the far end of the longer side (the
    left on a tie) until both sides hold at most ``budget`` characters together."""
    at = passage.index(blank)
    left, right = BLANK.sub("_____", passage[:at]), BLANK.sub("_____", passage[at + len(blank):])
    while len(left) + len(right) > budget:
        if len(left) >= len(right):
            left = left[1:]
        else:
            right = right[:-1]
    return left, right


def idiom_between(tokenizer, candidates, left, right):
    """Token ids of [CLS] left [SEP] idiom [SEP] right [SEP] for each candidate idiom (RoFormerV2's framing;
    the sides are already cut by characters, so nothing is cut here)."""
    left_ids, right_ids = tokenizer.encode(left)[0], tokenizer.encode(right)[0][1:]
    return [left_ids + tokenizer.encode(candidate)[0][1:] + right_ids for candidate in candidates]


def assign(probs):
    """The candidate index for each blank of one line, all different, maximising the summed log-probability
    (Hungarian assignment); ``probs`` is (blanks, candidates). With more blanks than candidates (never in
    ChID) each blank simply takes its best candidate."""
    probs = np.asarray(probs, dtype="float64")
    if probs.shape[0] > probs.shape[1]:
        return probs.argmax(-1).tolist()
    rows, cols = linear_sum_assignment(-np.log(probs + 1e-12))
    return cols[np.argsort(rows)].tolist()


def assign_groups(groups, probs):
    """``assign`` within each run of consecutive rows of the same group (the blanks of one ChID line)."""
    picks = []
    for _, rows in itertools.groupby(range(len(groups)), key=lambda i: groups[i]):
        picks += assign(np.asarray(probs)[list(rows)])
    return picks
