"""Named entities (cluener): a sentence as [CLS] text [SEP] with its gold spans, one span head per entity
type, and the span scores back to CLUENER's label tables {type: {entity: [[first, last], ...]}}."""

from dataclasses import dataclass

import numpy as np

from clue.batching import sequence_padding
from clue.heads import NEG


@dataclass(frozen=True)
class Sentence:
    token_ids: list          # [CLS] text [SEP]
    span_mask: list          # 1 on every real token, [CLS] and [SEP] too (bert4keras masks padding only)
    gold: list               # (type index, start, end) in sequence positions
    char_spans: list         # (first, last) character of each text token


def sentence(tokenizer, text, entities=(), types=(), maxlen=256):
    """``entities`` are (type, first, last character); an entity whose edges do not fall on token edges
    (rare: inside a Latin word) or past ``maxlen`` cannot be a span and is left out of the labels."""
    ids, where = tokenizer.char_spans(text, maxlen - 2)
    starts = {a: i + 1 for i, (a, _) in enumerate(where)}
    ends = {b: i + 1 for i, (_, b) in enumerate(where)}
    gold = [(types.index(kind), starts[a], ends[b]) for kind, a, b in entities if a in starts and b in ends]
    # [CLS] and [SEP] stay in the mask, as in the baseline's loss (negatives there); decode() skips them
    return Sentence([tokenizer.cls_id] + ids + [tokenizer.sep_id], [1] * (len(ids) + 2), gold, where)


def sentences(tokenizer, records, types, maxlen):
    """A ``Sentence`` per cluener record (its entities as the gold, none for a test record)."""
    return [sentence(tokenizer, r["text"], [(kind, a, b) for a, b, kind in r["entities"] or ()], types, maxlen)
            for r in records]


def targets(example, heads, length):
    """The dense (heads, length, length) 0/1 target of one sentence."""
    target = np.zeros((heads, length, length), dtype="float32")
    for kind, start, end in example.gold:
        target[kind, start, end] = 1
    return target


def collate(examples, length, heads):
    """Sentences -> ((token_ids, segment_ids, span_mask), dense (batch, heads, len, len) targets), built per
    batch because targets for a whole training set would take gigabytes."""
    token_ids = sequence_padding([e.token_ids for e in examples], length)
    span_mask = sequence_padding([e.span_mask for e in examples], length)
    x = token_ids, np.zeros_like(token_ids), span_mask
    return x, np.stack([targets(e, heads, token_ids.shape[1]) for e in examples])


def sentence_length(example):
    return len(example.token_ids)


def pointer_table(scores):
    """The (heads, n(n+1)/2) scores of every pair start <= end of a sentence's n text tokens (positions
    1..n; [CLS] and [SEP], never entities, left out) from its (heads, len, len) table. n is read from the
    mask: [CLS], the text and [SEP] may each pair with themselves, padding may not."""
    scores = np.asarray(scores)
    n = int((np.diagonal(scores[0]) > NEG / 2).sum()) - 2
    firsts, lasts = np.triu_indices(n)
    return scores[:, firsts + 1, lasts + 1]


def decode(found, text, char_spans, types):
    """CLUENER's label table {type: {entity text: [[first, last], ...]}} from (type, start, end) spans."""
    label = {}
    for kind, start, end in found:
        if not (1 <= start <= end <= len(char_spans)):   # on [CLS] or [SEP]: no characters
            continue
        first, last = char_spans[start - 1][0], char_spans[end - 1][1]
        entity = text[first:last + 1]
        label.setdefault(types[kind], {}).setdefault(entity, []).append([int(first), int(last)])
    return label
