"""Multiple choice (c3, chid): every (context, choice) pair is encoded on its own; a question's choices are
batched as (batch, choices, len) with a mask of the real ones, for ``clue.heads.choice_scorer``.

An example is (token ids of each choice, label index). chid adds the Hungarian assignment: the blanks of one
line share their 10 candidates and never take the same one.
"""

import itertools

import numpy as np
from scipy.optimize import linear_sum_assignment

from clue.batching import truncate_sequences
from clue.data import CHID_BLANK


def collate(examples, length, num_choices):
    """Examples -> ((token_ids, segment_ids, choice_mask), labels): every sequence padded to ``length`` and
    every question to ``num_choices`` choices."""
    tokens = np.zeros((len(examples), num_choices, length), dtype="int32")
    mask = np.zeros((len(examples), num_choices), dtype="int32")
    for i, (choices, _) in enumerate(examples):
        for j, ids in enumerate(choices):
            tokens[i, j, :len(ids)] = ids
            mask[i, j] = 1
    return (tokens, np.zeros_like(tokens), mask), np.array([label for _, label in examples], dtype="int32")


def longest_choice(example):
    return max(len(ids) for ids in example[0])


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


def blank_contexts(tokenizer, passage, budget):
    """{blank key: token ids of the context around that blank}, at most ``budget`` tokens each.

    The blank itself becomes one marker token ([unused1] where the vocabulary has it, else [MASK]); the
    passage's other blanks become four [MASK] (an idiom's length); the window is centred on the blank and
    a short side gives its room to the other.
    """
    mask = tokenizer.token_to_id("[MASK]")
    marker = tokenizer.token_to_id("[unused1]")
    marker = mask if marker == tokenizer.token_to_id("[UNK]") else marker
    pieces = [tokenizer.encode(text)[0][1:-1] for text in CHID_BLANK.split(passage)]
    keys = CHID_BLANK.findall(passage)
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
    left, right = CHID_BLANK.sub("_____", passage[:at]), CHID_BLANK.sub("_____", passage[at + len(blank):])
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
