"""Reading comprehension by span extraction (cmrc2018): windows sliding over a question's context, their
batches, and the answer text back out of the span scores.

A window is [CLS] question [SEP] context window [SEP]; the span head may point at [CLS] (no answer in this
window) or at the window's context tokens. At prediction the best span over all windows of a question wins,
cut from the context through the tokenizer's character mapping.
"""

from dataclasses import dataclass

import numpy as np

from clue.batching import sequence_padding
from clue.heads import NEG


@dataclass(frozen=True)
class Window:
    """One window of one question's context."""

    question: int            # index of the question's record
    token_ids: list          # [CLS] question [SEP] context tokens [SEP]
    span_mask: list          # 1 on [CLS] and the window's context tokens, 0 elsewhere
    label: tuple             # (start, end) of the answer in the sequence; (0, 0), [CLS], when it is not inside
    first: int               # context token index of the window's first context position
    offset: int              # that position in the sequence
    char_spans: list         # (first, last) character of every context token, shared by the question's windows

    def chars(self, start, end):
        """(first, last) character of the context covered by sequence positions start..end."""
        return (self.char_spans[start - self.offset + self.first][0],
                self.char_spans[end - self.offset + self.first][1])


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


def token_span(spans, start, end):
    """Token indices (first, last) covering characters start..end (inclusive), or None when none do."""
    inside = [i for i, (a, b) in enumerate(spans) if b >= start and a <= end]
    return (inside[0], inside[-1]) if inside else None


def question_windows(tokenizer, question, context, answer=None, maxlen=512, stride=128, index=0):
    """The windows of one question (record ``index``); ``answer`` is its (first, last) character or None.
    The question takes at most half of ``maxlen``; windows start every ``stride`` context tokens, or every
    window length when that is shorter (no token is skipped)."""
    q_ids = tokenizer.encode(question, maxlen=maxlen // 2)[0]      # [CLS] question [SEP]
    c_ids, c_spans = tokenizer.char_spans(context)
    room, offset = maxlen - len(q_ids) - 1, len(q_ids)
    target = token_span(c_spans, *answer) if answer is not None else None
    windows, first = [], 0
    while True:
        ids = c_ids[first:first + room]
        label = (0, 0)
        if target is not None and first <= target[0] and target[1] < first + room:
            label = (target[0] - first + offset, target[1] - first + offset)
        windows.append(Window(index, q_ids + ids + [tokenizer.sep_id], [1] + [0] * (offset - 1) + [1] * len(ids) + [0],
                              label, first, offset, c_spans))
        if first + room >= len(c_ids):
            return windows
        first += min(stride, room)


def windows(tokenizer, records, maxlen, stride, train=False):
    """Every window of every question; a training window knows where its question's first answer lies."""
    out = []
    for index, r in enumerate(records):
        answer = None
        if train and r["answers"]:
            answer = locate_answer(r["context"], r["answers"][0], r["answer_starts"][0])
        out += question_windows(tokenizer, r["question"], r["context"], answer, maxlen, stride, index)
    return out


def collate(windows, length):
    """Windows -> ((token_ids, segment_ids, span_mask), (batch, 2) gold start and end), padded to ``length``."""
    token_ids = sequence_padding([w.token_ids for w in windows], length)
    span_mask = sequence_padding([w.span_mask for w in windows], length)
    return (token_ids, np.zeros_like(token_ids), span_mask), np.array([w.label for w in windows], dtype="int32")


def window_length(window):
    return len(window.token_ids)


NBEST = 20   # spans kept per question for a seeds' ensemble (as BERT's run_squad n_best_size)


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


def nbest(windows, tops, questions, k=NBEST):
    """Each question's ``k`` best character spans over its windows (``tops``: each window's ``top_spans``),
    a span found in several windows scored by its best window (the decoding takes the best window), as
    arrays for ``clue.predictions.Answers``: starts, ends (questions, k) inclusive characters (-1 where
    fewer), scores (descending, -inf where fewer) and bound: no unlisted span scores higher (the k-th
    score; -inf when every span is listed: a window with k or more allowed pairs alone lists k spans)."""
    best = [{} for _ in range(questions)]
    for window, found in zip(windows, tops):
        spans = best[window.question]
        for start, end, score in found:
            chars = window.chars(start, end)
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
