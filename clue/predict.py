"""Predict with what a run trained, from its output folder alone (``weights/<task>.model.json`` and the
best weights beside it; see ``clue.run_files``):

    from clue import predict
    tnews = predict.load("runs/rbt")                       # the folder's only task, or task="tnews"
    tnews.predict(["今天股市大涨", "新款手机发布"])          # [{"label": "104", "probability": 0.91}, ...]
    afqmc = predict.load("runs/rbt", task="afqmc")
    afqmc.predict([("花呗怎么还款", "花呗如何还钱")])   # a pair of texts, or records as the CLUE files
    afqmc.predict([{"sentence1": "花呗怎么还款", "sentence2": "花呗如何还钱"}], top_k=2)  # hold them
    predict.load("runs/rbt", task="cmrc2018").predict([("谁写了红楼梦？", "《红楼梦》是曹雪芹所作。")])
    # [{"answer": "曹雪芹", "start": 6, "end": 8}]: context[start:end + 1]
    predict.load("runs/rbt", task="cluener").predict(["浙江杭州阿里巴巴"])
    # [{"entities": [{"label": "address", "text": "浙江杭州", "start": 0, "end": 3}, ...]}]
    predict.load("runs/rbt", task="c3").predict(records)   # c3 questions, chid blanks, as clue.data reads them
    # [{"index": 2, "text": "<the choice>", "probabilities": [0.1, 0.2, 0.6, 0.1]}]

Each kind of task has its predictor: ``Classifier`` (afqmc, tnews, iflytek, cmnli, ocnli, cluewsc2020, csl),
``Reader`` (cmrc2018), ``Tagger`` (cluener), ``Chooser`` (c3, chid). A record is framed, encoded, batched,
predicted and decoded by its task script's own functions (``frame``; ``examples``, ``head`` and ``predict``
of the span and choice tasks), so the records of a test file get the answers of the run's leaderboard file.
A classification text or pair of texts goes in as it is; a cmrc2018 (question, context) pair and a cluener
text become records. Character offsets are inclusive, as CLUENER's.
"""

import functools
import importlib.util
import inspect
from pathlib import Path

import numpy as np

from clue import batching, classification, heads, registry, run_files, training
from clue.models import build_transformer_model
from clue.tokenizer import Tokenizer, builtin_vocab

REPO = Path(__file__).resolve().parent.parent


def load(run_dir, task=None):
    """The predictor of ``task`` trained in the output folder ``run_dir`` (``task`` may be left out when the
    folder holds one task's model): a ``Classifier``, ``Reader``, ``Tagger`` or ``Chooser`` as its kind."""
    path = run_files.find_description(run_dir, task)
    return predictor_class(registry.get(run_files.read_description(path)["task"]))(path)


def predictor_class(task):
    """The predictor of ``task``'s kind: its head, and for span heads what the answer is."""
    if task.head == "spans":
        return {"text": Reader, "entities": Tagger}[task.answer]
    return {"classifier": Classifier, "choices": Chooser}[task.head]


@functools.cache
def task_script(name):
    """The module of task ``name``'s script (``tasks/<script>.py``), loaded once."""
    task = registry.get(name)
    spec = importlib.util.spec_from_file_location(f"clue_task_{task.name}", REPO / task.script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def with_settings(function, **settings):
    """``function`` with those of ``settings`` it takes (by name) given: a script's ``frame``, ``examples``
    and ``head`` take the encoder ``family`` or the ``pooling`` where their framing depends on them."""
    names = inspect.signature(function).parameters
    return functools.partial(function, **{k: v for k, v in settings.items() if k in names})


def task_frame(task, family):
    """The ``frame(record)`` of ``task``'s script (cluewsc2020's marks its spans as ``family`` does)."""
    return with_settings(task_script(task.name).frame, family=family)


def without_gold(record, *fields):
    """A copy of ``record`` without its gold answer ``fields`` (not an input, nor need it be valid)."""
    return {k: v for k, v in record.items() if k not in fields}


class Predictor:
    """A fine-tuned model rebuilt from its ``.model.json`` and best weights: tokenizer, model, settings."""

    def __init__(self, description_path):
        self.description = run_files.read_description(description_path)
        self.task = registry.get(self.description["task"])
        if predictor_class(self.task) is not type(self):
            raise ValueError(f"{description_path}: {self.task.name} is not a {self.kind} task "
                             f"(clue.predict.load picks the predictor)")
        model, vocab = self.description["model"], self.description["vocab"]
        self.maxlen, self.batch_size = self.description["maxlen"], self.description["batch_size"]
        self.settings = {"family": model["family"], "pooling": self.description["framing"]["pooling"]}
        self.tokenizer = Tokenizer(builtin_vocab() if vocab == run_files.BUILTIN_VOCAB else vocab,
                                   model["do_lower_case"])
        self.model = self.build(build_transformer_model(config=model["config"], model=model["family"]))
        training.load_model_weights(self.model, Path(description_path).with_name(self.description["weights"]))

    def build(self, encoder):
        """The task script's head on ``encoder``."""
        return with_settings(task_script(self.task.name).head, **self.settings)(encoder)

    def scored(self, records, batch_size=None):
        """The task script's predictions (a ``clue.predictions`` kind) of ``records``, framed and batched as
        the script does."""
        script = task_script(self.task.name)
        examples = with_settings(script.examples, **self.settings)(self.tokenizer, records, self.maxlen)
        return script.predict(self.model, records, examples, batch_size or self.batch_size)


class Classifier(Predictor):
    """A classification task's model."""

    kind = "classification"

    def build(self, encoder):
        self.labels = self.description["labels"]
        self.frame = task_frame(self.task, self.settings["family"])
        return heads.classifier(encoder, len(self.labels), self.settings["pooling"])

    def probabilities(self, inputs, batch_size=None):
        """(len(inputs), labels) class probabilities; ``inputs`` are records (dicts as the task's files
        hold them), texts, or (text, text) pairs."""
        records = [without_gold(item, "label") if isinstance(item, dict)
                   else {"_texts": (item,) if isinstance(item, str) else tuple(item)} for item in inputs]
        if not records:
            return np.zeros((0, len(self.labels)), np.float32)

        def frame(record):
            return record["_texts"] if "_texts" in record else self.frame(record)

        examples = classification.encode(self.tokenizer, records, frame, self.labels, self.maxlen,
                                         self.description["framing"]["second_segment"])
        batches = batching.Batches(examples, batching.pad_inputs, batch_size or self.batch_size,
                                   bucket=batching.BUCKET)
        return batching.predict(self.model, batches)

    def predict(self, inputs, top_k=1, batch_size=None):
        """One dict per input: its most probable ``label`` and that ``probability``; with ``top_k`` > 1 also
        ``top``, the ``top_k`` most probable [label, probability] pairs."""
        out = []
        for row in self.probabilities(inputs, batch_size):
            ranked = np.argsort(-row, kind="stable")[:max(1, top_k)]
            found = {"label": self.labels[ranked[0]], "probability": float(row[ranked[0]])}
            if top_k > 1:
                found["top"] = [[self.labels[i], float(row[i])] for i in ranked]
            out.append(found)
        return out


class Reader(Predictor):
    """cmrc2018's model: the answer to a question is a span of its context."""

    kind = "reading comprehension"

    def predict(self, inputs, top_k=1, batch_size=None):
        """One dict per input (a record, or a (question, context) pair): the ``answer`` text and its
        ``start`` and ``end`` character in the context (inclusive; "", None, None where no span is allowed);
        with ``top_k`` > 1 also ``top``, the ``top_k`` best spans [answer, start, end, score] (at most
        ``clue.reading.NBEST``)."""
        records = [without_gold(item, "answers", "answer_starts") if isinstance(item, dict)
                   else dict(zip(("question", "context"), item, strict=True)) for item in inputs]
        if not records:
            return []
        out = []
        for spans in self.scored(records, batch_size).ranked(max(1, top_k)):
            found = dict(zip(("answer", "start", "end"), spans[0]))
            if top_k > 1:
                found["top"] = [list(span) for span in spans if span[1] is not None]
            out.append(found)
        return out


class Tagger(Predictor):
    """cluener's model: the named entities of a text."""

    kind = "named entity"

    def predict(self, inputs, batch_size=None):
        """One dict per input (a record, or a text): ``entities``, each {"label": type, "text", "start",
        "end"} (inclusive characters), in the order of the text."""
        records = [{**without_gold(item, "label"), "entities": None} if isinstance(item, dict)
                   else {"text": item if isinstance(item, str) else item[0], "entities": None} for item in inputs]
        if not records:
            return []
        out = []
        for table in self.scored(records, batch_size).decode():   # CLUENER's {type: {entity: [[first, last]]}}
            found = [{"label": kind, "text": entity, "start": a, "end": b}
                     for kind, entities in table.items() for entity, places in entities.items() for a, b in places]
            out.append({"entities": sorted(found, key=lambda e: (e["start"], e["end"], e["label"]))})
        return out


class Chooser(Predictor):
    """c3's and chid's model: the answer is one of a question's (a blank's) options."""

    kind = "multiple choice"

    def predict(self, inputs, batch_size=None):
        """One dict per input (a record as ``clue.data`` reads the task's files: a c3 question, a chid
        blank; chid's blanks of one line among them pick distinct candidates): the chosen option's
        ``index`` and ``text``, and the ``probabilities`` of the options."""
        records = [{**without_gold(item, "answer"), "label": None} for item in inputs]
        if not records:
            return []
        scored = self.scored(records, batch_size)
        out = []
        for record, pick, probs in zip(records, scored.decode(), scored.probs):
            options = record[self.task.options][:len(probs)]
            out.append({"index": int(pick), "text": options[int(pick)],
                        "probabilities": [float(p) for p in probs[:len(options)]]})
        return out
