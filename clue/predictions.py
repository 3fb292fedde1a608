"""Prediction files made from the model's raw scores, with those scores kept beside them.

Every leaderboard file, and the dev predictions (``results/dev/<task>_dev.json``), is written by one of the
kinds below from the scores the model gave; the scores go beside the file as ``<name>.scores.npz``. A
seeds' ensemble (``clue.ensemble``) averages the saved scores of several runs and writes through the same
kind, so an ensemble of identical runs writes their very file, and anyone can redo an average from the
.npz files alone (``numpy.load``; the ``meta`` entry is JSON: ids, gold labels, what decoding needs).

What each kind keeps, and the ensemble averages:

- ``Labels`` (the seven classification tasks, c3): class (c3: choice) probabilities, (n, classes)
  float32; the label is the most probable one.
- ``Assignment`` (chid): candidate probabilities (blanks, 10) float32, before the assignment; the blanks
  of one line then get distinct candidates (``multiple_choice.assign_groups``).
- ``Answers`` (cmrc2018): for each question its ``reading.NBEST`` character spans with the highest
  GlobalPointer scores (a span seen in several windows keeps its best score: the decoding takes the best
  window), and ``bound``: no unlisted span scores higher (the NBEST-th score; -inf when every valid span
  is listed). The answer is the best listed span. A span's ensemble score is its mean over the runs, a run
  that did not list it counting its bound: exact for spans every run listed, an upper bound for the
  others. (The full pair tables of one dev set would take about 1 GB in float16.)
- ``Entities`` (cluener): for each sentence and entity type the GlobalPointer score of every token pair
  start <= end within the text, float16, rounded away from 0 where float16 would give 0 (the sign
  decides); every pair scoring above 0 is an entity. About 20 KB per sentence.

Means are taken in float64 (exact for float16 inputs, and the mean of equal values is that value).
"""

import json
from pathlib import Path

import numpy as np

from clue import submission
from clue.metrics import METRICS
from clue.paths import atomic_path

SMALLEST_FLOAT16 = np.float16(2.0 ** -24)   # the smallest positive float16 (a subnormal)


def scores_path(path):
    """Where the raw scores of the prediction file ``path`` are kept: ``<stem>.scores.npz`` beside it."""
    path = Path(path)
    return path.with_name(f"{path.stem}.scores.npz")


def dev_name(task_name):
    """The dev predictions of a task, inside a results folder."""
    return f"dev/{task_name}_dev.json"


def dev_path(results, task_name):
    return Path(results) / dev_name(task_name)


def file_names(task):
    """Every prediction file a run of ``task`` writes (relative to results/): the dev predictions, the
    leaderboard files, and the scores of each."""
    names = [dev_name(task.name), *task.output_names()]
    return [n for name in names for n in (name, str(scores_path(Path(name))))]


def record_ids(records):
    """Each record's ``id``, or its position among the records when it has none (dev files)."""
    return [r.get("id", i) for i, r in enumerate(records)]


def mean(arrays):
    """The element-wise mean of equal-shaped arrays, summed in float64."""
    return sum(np.asarray(a, dtype=np.float64) for a in arrays) / len(arrays)


def signed_float16(values):
    """``values`` as float16, a positive value that float16 would round to 0 kept as the smallest positive
    float16 (so ``> 0`` answers the same)."""
    values = np.asarray(values, dtype=np.float32)
    out = values.astype(np.float16)
    out[(out == 0) & (values > 0)] = SMALLEST_FLOAT16
    return out


def save_npz(path, **arrays):
    """``numpy.savez`` of ``arrays`` through ``paths.atomic_path`` (never half a file)."""
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    return Path(path)


class Predictions:
    """What the kinds share. ``meta`` (JSON) holds the ids, the gold labels (None for a test file) and what
    decoding needs; the score arrays are attributes named in ``arrays``. Task scripts build one with the
    kind's ``of(records, ...)``; ``write`` writes the prediction file and its scores."""

    kind = None
    arrays = ()          # the names of the score arrays, saved as they are
    same = ("ids",)      # meta entries every averaged run must share

    def __init__(self, meta, **arrays):
        self.meta = meta
        for name in self.arrays:
            setattr(self, name, arrays[name])

    def write(self, path):
        """The prediction file at ``path`` and its scores beside it; returns ``path``."""
        save_npz(scores_path(path), kind=np.array(self.kind),
                 meta=np.array(json.dumps(self.meta, ensure_ascii=False)),
                 **{name: getattr(self, name) for name in self.arrays})
        self.write_file(path, self.decode())
        return path

    def score(self, metric):
        """The dev metric (a fraction) of the decoded predictions against the gold labels kept with them."""
        if self.meta.get("gold") is None:
            raise ValueError(f"{self.kind}: no gold labels kept with these predictions (a test file?)")
        return METRICS[metric](self.meta["gold"], self.decode())

    def __len__(self):
        return len(self.meta["ids"])

    @classmethod
    def average(cls, runs):
        """The runs' score arrays averaged element by element (probabilities; kinds whose scores do not
        average that way override this)."""
        return cls(runs[0].meta, **{name: mean([getattr(r, name) for r in runs]).astype(np.float32)
                                    for name in cls.arrays})


class Labels(Predictions):
    """One label per example: the most probable of ``classes``."""

    kind, arrays, same = "labels", ("probs",), ("ids", "classes", "gold")

    @classmethod
    def of(cls, records, probs, classes):
        meta = {"ids": record_ids(records), "classes": [str(c) for c in classes],
                "gold": gold_labels(records, "label", str)}
        return cls(meta, probs=np.asarray(probs, dtype=np.float32))

    def decode(self):
        return [self.meta["classes"][i] for i in np.argmax(self.probs, axis=-1)]

    def write_file(self, path, labels):
        submission.write_labels(path, self.meta["ids"], labels)


class Assignment(Predictions):
    """chid: a candidate index per blank, the blanks of one line (``groups``) taking distinct ones."""

    kind, arrays, same = "assignment", ("probs",), ("ids", "groups", "gold")

    @classmethod
    def of(cls, records, probs):
        meta = {"ids": record_ids(records), "groups": [r["group"] for r in records],
                "gold": gold_labels(records, "label", int)}
        return cls(meta, probs=np.asarray(probs, dtype=np.float32))

    def decode(self):
        from clue.multiple_choice import assign_groups

        return [int(p) for p in assign_groups(self.meta["groups"], self.probs)] if len(self) else []

    def write_file(self, path, picks):
        submission.write_object(path, dict(zip(self.meta["ids"], picks)))


class Answers(Predictions):
    """cmrc2018: per question the best character spans of its context (``starts``/``ends`` inclusive,
    (questions, NBEST), -1 where fewer), their ``scores`` (descending, -inf where fewer) and ``bound``."""

    kind, arrays = "answers", ("starts", "ends", "scores", "bound")
    same = ("ids", "contexts", "context_of", "gold")

    @classmethod
    def of(cls, records, starts, ends, scores, bound):
        """``records`` (cmrc2018 questions) and their spans as ``reading.nbest`` gives them."""
        contexts = list(dict.fromkeys(r["context"] for r in records))
        where = {c: i for i, c in enumerate(contexts)}
        meta = {"ids": record_ids(records), "contexts": contexts, "context_of": [where[r["context"]] for r in records],
                "gold": gold_labels(records, "answers", list)}
        return cls(meta, starts=np.asarray(starts, np.int32), ends=np.asarray(ends, np.int32),
                   scores=np.asarray(scores, np.float32), bound=np.asarray(bound, np.float32))

    def decode(self):
        """The text of each question's best span; "" for a question without one."""
        return [spans[0][0] for spans in self.ranked(1)]

    def ranked(self, k=1):
        """Each question's ``k`` best listed spans, best first, as (text, first, last character of its
        context, score); just ("", None, None, None) for a question without any."""
        contexts, found = self.meta["contexts"], []
        for q, c in enumerate(self.meta["context_of"]):
            spans = [(contexts[c][a:b + 1], int(a), int(b), float(s))
                     for a, b, s in zip(self.starts[q, :k], self.ends[q, :k], self.scores[q, :k]) if np.isfinite(s)]
            found.append(spans or [("", None, None, None)])
        return found

    def write_file(self, path, answers):
        submission.write_object(path, dict(zip(self.meta["ids"], answers)))

    @classmethod
    def average(cls, runs):
        """Per question, every span some run listed, scored by its mean over the runs (a run that did not
        list it counts its bound); the best NBEST kept in descending order (ties: the first listed first)."""
        from clue.reading import NBEST, top_listed

        count = len(runs[0])
        starts, ends = np.full((count, NBEST), -1, np.int32), np.full((count, NBEST), -1, np.int32)
        scores, bound = np.full((count, NBEST), -np.inf, np.float32), np.empty(count, np.float32)
        for q in range(count):
            listed = {}
            for r, run in enumerate(runs):
                for a, b, s in zip(run.starts[q], run.ends[q], run.scores[q]):
                    if np.isfinite(s):
                        listed.setdefault((int(a), int(b)), [other.bound[q] for other in runs])[r] = s
            kept, beyond = top_listed([(a, b, float(mean(v))) for (a, b), v in listed.items()], NBEST)
            for k, (a, b, s) in enumerate(kept):
                starts[q, k], ends[q, k], scores[q, k] = a, b, s
            bound[q] = max(beyond, float(mean([run.bound[q] for run in runs])))
        return cls(runs[0].meta, starts=starts, ends=ends, scores=scores, bound=bound)


class Entities(Predictions):
    """cluener: per sentence the label {type: {entity: [[first, last], ...]}} from ``tables`` (every
    sentence's (types, n(n+1)/2) upper triangle of pair scores, flat, float16) and ``sizes`` (its tokens n);
    ``meta`` keeps each token's (first, last) character for the decoding."""

    kind, arrays, same = "entities", ("tables", "sizes"), ("ids", "texts", "where", "types", "gold")

    @classmethod
    def of(cls, records, sentences, tables, types):
        """``records`` (cluener sentences), their ``ner.Sentence``s and ``ner.pointer_table``s."""
        meta = {"ids": record_ids(records), "texts": [r["text"] for r in records],
                "where": [[[int(a), int(b)] for a, b in s.char_spans] for s in sentences], "types": list(types),
                "gold": gold_labels(records, "label", dict)}
        flat = np.concatenate([np.ravel(t) for t in tables]) if len(tables) else np.zeros(0)
        return cls(meta, tables=signed_float16(flat), sizes=np.array([len(s.char_spans) for s in sentences], np.int32))

    def decode(self):
        from clue.ner import decode

        labels, offset, types = [], 0, self.meta["types"]
        for n, text, where in zip(self.sizes, self.meta["texts"], self.meta["where"]):
            firsts, lasts = np.triu_indices(n)
            table = self.tables[offset:offset + len(types) * len(firsts)].reshape(len(types), -1)
            offset += table.size
            kinds, pairs = np.nonzero(table > 0)
            labels.append(decode(zip(kinds, firsts[pairs] + 1, lasts[pairs] + 1), text, where, types))
        return labels

    def write_file(self, path, labels):
        submission.write_lines(path, ({"id": i, "label": label} for i, label in zip(self.meta["ids"], labels)))

    @classmethod
    def average(cls, runs):
        return cls(runs[0].meta, tables=signed_float16(mean([r.tables for r in runs])), sizes=runs[0].sizes)


KINDS = {k.kind: k for k in (Labels, Assignment, Answers, Entities)}


def gold_labels(records, field, convert):
    """``convert(record[field])`` of every record, or None when some record has none (a test file)."""
    if not records or any(r.get(field) is None for r in records):
        return None
    return [convert(r[field]) for r in records]


def load(path):
    """The predictions whose scores are kept at ``path`` (a ``.scores.npz``)."""
    with np.load(path, allow_pickle=False) as saved:
        kind, meta = str(saved["kind"]), json.loads(str(saved["meta"]))
        arrays = {name: saved[name] for name in KINDS[kind].arrays}
    return KINDS[kind](meta, **arrays)


def average(runs, names=None):
    """The ensemble of ``runs`` (predictions of one file by several runs): their scores averaged. Raises
    ValueError, naming the runs (``names``), when they are not predictions of the same examples."""
    names = names or [f"run {i + 1}" for i in range(len(runs))]
    first = runs[0]
    for name, run in zip(names[1:], runs[1:]):
        if run.kind != first.kind:
            raise ValueError(f"{name} holds {run.kind} scores, {names[0]} {first.kind} scores")
        differ = [key for key in first.same if run.meta.get(key) != first.meta.get(key)]
        shapes = [a for a in first.arrays if a != "bound" and np.shape(getattr(run, a)) != np.shape(getattr(first, a))]
        if differ or shapes:
            raise ValueError(f"{name} and {names[0]} did not predict the same examples (their "
                             f"{', '.join(differ + shapes)} differ): were they run with other flags or data?")
    return type(first).average(runs)
