"""Predict with what a run trained, from its output folder alone (``weights/<task>.model.json`` and the
best weights beside it; see ``clue.run_files``):

    from clue import predict
    tnews = predict.load("runs/rbt")                       # the folder's only task, or task="tnews"
    tnews.predict(["今天股市大涨", "新款手机发布"])          # [{"label": "104", "probability": 0.91}, ...]
    afqmc = predict.load("runs/rbt", task="afqmc")
    afqmc.predict([("花呗怎么还款", "花呗如何还钱")])   # a pair of texts, or records as the CLUE files
    afqmc.predict([{"sentence1": "花呗怎么还款", "sentence2": "花呗如何还钱"}], top_k=2)  # hold them

The classification tasks (afqmc, tnews, iflytek, cmnli, ocnli, cluewsc2020, csl). A record is framed by its
task script's ``frame`` (csl's keywords, cluewsc2020's marked spans), a text or a pair of texts goes in as
it is; then encoded, batched and predicted as the script does (``clue.classification``, ``clue.batching``),
so the records of a test file get the labels of the run's leaderboard file.
"""

import functools
import importlib.util
import inspect
from pathlib import Path

import numpy as np

from clue import batching, classification, heads, registry, run_files, training
from clue.models import build_transformer_model
from clue.paths import MissingPathError
from clue.tokenizer import Tokenizer, builtin_vocab

REPO = Path(__file__).resolve().parent.parent


def load(run_dir, task=None):
    """The ``Classifier`` of ``task`` trained in the output folder ``run_dir`` (``task`` may be left out when
    the folder holds one task's model)."""
    weights = Path(run_dir) / "weights"
    found = sorted(weights.glob("*.model.json"))
    if task is not None:
        name = registry.get(task).name
        found = [p for p in found if p.name == f"{name}.model.json"]
    if len(found) != 1:
        what = f"{task}'s model" if task else "a model"
        raise MissingPathError(f"{weights}: {what} is described by {len(found) or 'no'} .model.json files "
                               + ("(pass task=...)" if found else "(train with this --output-dir first)"))
    return Classifier(found[0])


def task_frame(task, family):
    """The ``frame(record)`` of ``task``'s script (cluewsc2020's marks its spans as ``family`` does)."""
    spec = importlib.util.spec_from_file_location(f"clue_task_{task.name}", REPO / task.script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if "family" in inspect.signature(module.frame).parameters:
        return functools.partial(module.frame, family=family)
    return module.frame


class Classifier:
    """A classification task's fine-tuned model, rebuilt from its ``.model.json`` and best weights."""

    def __init__(self, description_path):
        self.description = run_files.read_description(description_path)
        self.task = registry.get(self.description["task"])
        if self.task.head != "classifier":
            raise ValueError(f"{description_path}: {self.task.name} is not a classification task")
        model, vocab = self.description["model"], self.description["vocab"]
        self.labels = self.description["labels"]
        self.tokenizer = Tokenizer(builtin_vocab() if vocab == run_files.BUILTIN_VOCAB else vocab,
                                   model["do_lower_case"])
        encoder = build_transformer_model(config=model["config"], model=model["family"])
        self.model = heads.classifier(encoder, len(self.labels), self.description["framing"]["pooling"])
        training.load_model_weights(self.model, Path(description_path).with_name(self.description["weights"]))
        self.frame = task_frame(self.task, model["family"])

    def probabilities(self, inputs, batch_size=None):
        """(len(inputs), labels) class probabilities; ``inputs`` are records (dicts as the task's files
        hold them), texts, or (text, text) pairs."""
        # a record's gold label, if any, is not an input (nor need it be one of the labels)
        records = [{k: v for k, v in item.items() if k != "label"} if isinstance(item, dict)
                   else {"_texts": (item,) if isinstance(item, str) else tuple(item)} for item in inputs]
        if not records:
            return np.zeros((0, len(self.labels)), np.float32)

        def frame(record):
            return record["_texts"] if "_texts" in record else self.frame(record)

        examples = classification.encode(self.tokenizer, records, frame, self.labels, self.description["maxlen"],
                                         self.description["framing"]["second_segment"])
        batches = batching.Batches(examples, batching.pad_inputs, batch_size or self.description["batch_size"],
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
