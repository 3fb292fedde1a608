"""bert4keras 0.11.5 side of scripts/benchmark.py; runs under legacy Keras (TF_USE_LEGACY_KERAS=1 TF_KERAS=1).

    python scripts/bench_bert4keras.py step JOB.json RESULT.json   # train / inference step, random batch
    python scripts/bench_bert4keras.py e2e  JOB.json               # the CLUE pipeline, as a user runs it
    python scripts/bench_bert4keras.py tokenize JOB.json RESULT.json   # its Tokenizer against ours

``e2e`` re-creates the CLUE-bert4keras baseline scripts (bojone/CLUE-bert4keras, tnews.py / ocnli.py) as a
user runs them: bert4keras's ``Tokenizer``; a ``DataGenerator`` subclass that encodes each example when its
batch is drawn (every epoch) and pads each batch to its longest with ``sequence_padding``; the pretrained
BERT from ``build_transformer_model``, [CLS] -> Dense softmax; ``model.fit`` on ``forfit()``; an evaluator
that scores dev after each epoch with ``model.predict`` per batch and saves the best weights; then the best
weights are loaded and the test file is predicted and written. The optimizer is the baselines' own:
bert4keras's AdaFactor as their snippets.py builds it, with the two patches it needs under tf_keras 2.21
(``adafactor`` below). One difference, in bert4keras's favour or neutral: the baselines build the encoder
with ``application='unilm'`` (shared with their generation tasks), which with all-zero segment ids attends
exactly like the plain encoder built here, minus one bias add per layer.
"""

import json
import sys
import time
from pathlib import Path

START = time.time()
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from bert4keras.backend import keras
from bert4keras.models import build_transformer_model
from bert4keras.snippets import DataGenerator, sequence_padding
from bert4keras.tokenizers import Tokenizer

TNEWS = ["100", "101", "102", "103", "104", "106", "107", "108", "109", "110", "112", "113", "114", "115",
         "116"]
NLI = ["entailment", "neutral", "contradiction"]


def classifier(config_path, checkpoint_path, num_classes):
    """[CLS] of the last layer -> Dense softmax, initialised like the encoder (the baselines' head)."""
    bert = build_transformer_model(config_path, checkpoint_path, return_keras_model=False)
    cls = keras.layers.Lambda(lambda x: x[:, 0])(bert.model.output)
    probs = keras.layers.Dense(num_classes, activation="softmax", kernel_initializer=bert.initializer)(cls)
    return keras.models.Model(bert.model.input, probs)


def adafactor(learning_rate):
    """bert4keras's AdaFactor as CLUE-bert4keras's snippets.py builds it, patched to run under tf_keras 2.21
    (tests/test_optimizers.py makes the same two patches): its classes are written for the OptimizerV2 API,
    now ``keras.optimizers.legacy.Optimizer``, and must be defined on it; and its ``learning_rate`` property
    creates a new variable on every call (its ``hasattr`` misses a name-mangled attribute), which
    tf.function refuses, so the constant rate is returned as the float it is."""
    if "bert4keras.optimizers" in sys.modules:
        raise RuntimeError("bert4keras.optimizers was imported before it could be patched")
    keras.optimizers.Optimizer = keras.optimizers.legacy.Optimizer
    import bert4keras.optimizers as optimizers

    optimizers.AdaFactorBase.learning_rate = property(lambda self: self._learning_rate)
    return optimizers.AdaFactor(learning_rate=learning_rate, beta1=0.9, min_dim_size_to_factor=10**6)


def step(job, result_path):
    """Train (tf_keras Adam, or with ``job["optimizer"] == "adafactor"`` bert4keras's AdaFactor at 5e-4) and
    inference steps on one full-length random batch, timed as ours are."""
    import tf_keras

    from bench_worker import random_batch, timed_steps   # plain Python and numpy: no Keras 3 import

    token_ids, segment_ids, labels = random_batch(job)
    model = classifier(job["config_path"], None, job["classes"])
    optimizer = adafactor(5e-4) if job.get("optimizer") == "adafactor" else tf_keras.optimizers.Adam(1e-5)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer)
    result = timed_steps(lambda: model.train_on_batch([token_ids, segment_ids], labels),
                         lambda: model.predict_on_batch([token_ids, segment_ids]), job)
    result["tf_keras"] = tf_keras.__version__
    Path(result_path).write_text(json.dumps(result, indent=1), encoding="utf-8")


# ---------------------------------------------------------------------------------------------------------
# The CLUE pipeline


def load(path, task, limit):
    """(text, text2 or None, label index) per line, at most ``limit``; NLI "-" rows are skipped."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if len(records) == limit:
                break
            row = json.loads(line)
            if task == "tnews":
                records.append((row["sentence"], None, TNEWS.index(row.get("label", "100"))))
            elif row.get("label", "neutral") in NLI:
                records.append((row["sentence1"], row["sentence2"], NLI.index(row.get("label", "neutral"))))
    return records


class Batches(DataGenerator):
    """Encodes each example as its batch is drawn; pads every batch to its longest (bert4keras's way)."""

    def __init__(self, data, batch_size, tokenizer, maxlen):
        super().__init__(data, batch_size)
        self.tokenizer, self.maxlen = tokenizer, maxlen

    def __iter__(self, random=False):
        token_ids, segment_ids, labels = [], [], []
        for is_end, (first, second, label) in self.sample(random):
            ids, segments = self.tokenizer.encode(first, second, maxlen=self.maxlen)
            token_ids.append(ids)
            segment_ids.append([0] * len(ids))   # the baselines give both texts of a pair segment 0
            labels.append([label])
            if len(token_ids) == self.batch_size or is_end:
                yield [sequence_padding(token_ids), sequence_padding(segment_ids)], sequence_padding(labels)
                token_ids, segment_ids, labels = [], [], []


def log(message):
    print(f"[{time.time() - START:6.1f} s] {message}", flush=True)


class StepTimes(keras.callbacks.Callback):
    """Prints when steps end (the log of each e2e run, to see where the time goes)."""

    def on_train_batch_end(self, batch, logs=None):
        if batch < 3 or batch % 10 == 0:
            log(f"step {batch} done")


class Evaluator(keras.callbacks.Callback):
    """Dev accuracy after each epoch; the best weights are saved."""

    def __init__(self, model, dev, weights_path):
        super().__init__()
        self.classifier, self.dev, self.weights_path, self.best = model, dev, weights_path, -1.0

    def accuracy(self):
        right = total = 0
        for x, y in self.dev:
            right += int((self.classifier.predict(x, verbose=0).argmax(axis=1) == y[:, 0]).sum())
            total += len(y)
        return right / total

    def on_epoch_end(self, epoch, logs=None):
        log("epoch end")
        score = self.accuracy()
        log("dev scored")
        if score > self.best:
            self.best = score
            self.classifier.save_weights(self.weights_path)
        print(f"dev accuracy {score:.4f} (best {self.best:.4f})", flush=True)


def e2e(job):
    """Fine-tune on the first ``limit`` train examples for ``epochs``, score dev, predict test, write it."""
    task, folder, out = job["task"], Path(job["data_dir"]) / job["task"], Path(job["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    labels = TNEWS if task == "tnews" else NLI
    train_file = "train.json" if task == "tnews" else "train.50k.json"
    tokenizer = Tokenizer(job["vocab_path"], do_lower_case=True)
    train = Batches(load(folder / train_file, task, job["limit"]), job["batch_size"], tokenizer, job["maxlen"])
    dev = Batches(load(folder / "dev.json", task, job["limit"]), job["batch_size"], tokenizer, job["maxlen"])

    log("data ready")
    model = classifier(job["config_path"], job["checkpoint_path"], len(labels))
    log("model built and loaded")
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"], optimizer=adafactor(job["lr"]))
    weights = str(out / f"{task}.weights")
    model.fit(train.forfit(), steps_per_epoch=len(train), epochs=job["epochs"], verbose=job.get("verbose", 0),
              callbacks=[StepTimes(), Evaluator(model, dev, weights)])

    model.load_weights(weights)
    test_path = folder / "test.json"
    if test_path.is_file():   # the shared tnews folder has no test file
        rows = [json.loads(line) for line in test_path.read_text(encoding="utf-8").splitlines()[:job["limit"]]]
        test = Batches([(r.get("sentence", r.get("sentence1")), r.get("sentence2"), 0) for r in rows],
                       job["batch_size"], tokenizer, job["maxlen"])
        predicted = [p for x, _ in test for p in model.predict(x, verbose=0).argmax(axis=1)]
        with open(out / f"{task}_predict.json", "w", encoding="utf-8") as f:
            for row, p in zip(rows, predicted):
                f.write(json.dumps({"id": row["id"], "label": labels[p]}) + "\n")
    log("done")


# ---------------------------------------------------------------------------------------------------------
# Tokenization


def tokenize(job, result_path):
    """CPU seconds (best of ``rounds``) of bert4keras ``encode`` and ours (``encode`` one text at a time,
    ``encode_batch`` as lists, ``encode_batch(arrays=True)`` as the task pipeline calls it) on the same
    texts, all four checked to give the same ids. Both run here, alternately, so that load from other jobs
    hits both alike; each round builds them afresh (untimed: our word caches start empty), with the garbage
    collector off while timing, as ``timeit`` does."""
    import gc

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from clue.tokenizer import Tokenizer as Ours

    items, maxlen = job["items"], job["maxlen"]
    firsts = [a for a, _ in items]
    seconds = None if all(b is None for _, b in items) else [b for _, b in items]
    calls = {"bert4keras": lambda tok: [tok.encode(a, b, maxlen=maxlen) for a, b in items],
             "ours": lambda tok: [tok.encode(a, b, maxlen=maxlen) for a, b in items],
             "ours_batch": lambda tok: tok.encode_batch(firsts, seconds, maxlen),
             "ours_arrays": lambda tok: tok.encode_batch(firsts, seconds, maxlen, arrays=True)}
    best, outputs = dict.fromkeys(calls, float("inf")), {}
    for _ in range(job["rounds"]):
        for name, call in calls.items():
            tokenizer = Tokenizer(job["vocab_path"], do_lower_case=True) if name == "bert4keras" else \
                Ours(job["vocab_path"])
            gc.collect()
            gc.disable()
            try:
                start = time.process_time()
                outputs[name] = call(tokenizer)
                best[name] = min(best[name], time.process_time() - start)
            finally:
                gc.enable()
    ids = {name: [[np.asarray(v).tolist() for v in pair] for pair in out] for name, out in outputs.items()}
    identical = all(out == ids["bert4keras"] for out in ids.values())
    Path(result_path).write_text(json.dumps({"seconds": best, "identical": identical}), encoding="utf-8")


if __name__ == "__main__":
    kind, job_file = sys.argv[1], sys.argv[2]
    job = json.loads(Path(job_file).read_text(encoding="utf-8"))
    if kind == "step":
        step(job, sys.argv[3])
    elif kind == "tokenize":
        tokenize(job, sys.argv[3])
    else:
        e2e(job)
