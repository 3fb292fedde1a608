"""Our side of scripts/benchmark.py, one measurement per process (the Keras backend is chosen at import,
and the parent measures each process's peak memory):

    python scripts/bench_worker.py peak|checkpoint|step|transformers|tricks|predict JOB.json RESULT.json

``peak``: fp32 matmul GFLOP/s (TensorFlow, with and without XLA); ``checkpoint``: a random Google-format
BERT checkpoint for both end-to-end pipelines; ``step``: train and inference steps of our encoder with the
task scripts' classifier head, on the backend ``KERAS_BACKEND`` names; ``transformers``: the same steps of
transformers' BERT on PyTorch; ``tricks``: the train step with each
leaderboard trick (``clue.tricks``) against the plain one, interleaved; ``predict``: texts/s of
``clue.predict`` on a trained run folder against the model alone on the same batches. bert4keras's side is
scripts/bench_bert4keras.py; it reuses ``random_batch`` and ``timed_steps`` (numpy only) from here.
"""

import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def median_time(fn, repeat):
    """(median seconds, all seconds) of ``repeat`` calls of ``fn``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def random_batch(job, seed=0):
    """Full-length token ids (no padding: every position is real work), zero segment ids, labels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    shape = (job["batch"], job["seq"])
    token_ids = rng.integers(1, job["config"]["vocab_size"], shape).astype("int32")
    return token_ids, np.zeros(shape, "int32"), rng.integers(0, job["classes"], job["batch"]).astype("int32")


def timed_steps(train, infer, job):
    """First call (trace / compile), then ``repeat`` timed calls, for a train and an inference step."""
    start = time.perf_counter()
    train()
    first = time.perf_counter() - start
    train()
    train_median, train_times = median_time(train, job["repeat"])
    infer()
    infer_median, infer_times = median_time(infer, job["repeat"])
    tokens = job["batch"] * job["seq"]
    return {"first_step_s": first, "train_s": train_median, "train_times": train_times,
            "infer_s": infer_median, "infer_times": infer_times,
            "train_tokens_per_s": tokens / train_median, "infer_tokens_per_s": tokens / infer_median}


def peak(job):
    """Median GFLOP/s of fp32 matmuls per size, TensorFlow graph and XLA: the reference of the MFU."""
    import tensorflow as tf

    results = []
    for m, k, n in job["sizes"]:
        a, b = tf.random.normal((m, k)), tf.random.normal((k, n))
        for engine, jit in (("tensorflow", False), ("tensorflow-xla", True)):
            matmul = tf.function(tf.matmul, jit_compile=jit)
            matmul(a, b).numpy()
            seconds, _ = median_time(lambda: matmul(a, b).numpy(), job["repeat"])
            results.append({"engine": engine, "m": m, "k": k, "n": n, "gflops": 2 * m * k * n / seconds / 1e9})
    return {"matmuls": results, "peak_gflops": max(r["gflops"] for r in results)}


def checkpoint(job):
    """Our encoder, randomly initialised with a seed, saved under Google's TF variable names, or as HF
    safetensors when ``job["prefix"]`` ends in .safetensors (no TensorFlow needed: ``--gpu``)."""
    import numpy as np

    from clue.checkpoints import variable_names
    from clue.convert import write_safetensors, write_tf
    from clue.models import build_transformer_model

    pairs = variable_names(build_transformer_model(config=job["config"], seed=0))
    tensors = {name: np.asarray(variable) for variable, name in pairs}
    (write_safetensors if job["prefix"].endswith(".safetensors") else write_tf)(job["prefix"], tensors)
    return {"variables": len(tensors), "parameters": int(sum(t.size for t in tensors.values()))}


def step(job):
    """Train step (Keras's Adam; ``job["optimizer"]`` "adafactor": the task scripts' AdaFactor at 5e-4, "adamw":
    clue.optimizers.AdamW, the demo's)
    and inference of encoder + classifier, compiled and with the optimizer built eagerly as
    clue.training.fit does; XLA per ``job["jit"]``, dtype policy per ``job["policy"]``."""
    import keras

    from clue.cli import set_random_seed
    from clue.heads import classifier
    from clue.models import build_transformer_model
    from clue.optimizers import AdaFactor, AdamW

    set_random_seed(0)
    keras.mixed_precision.set_dtype_policy(job.get("policy", "float32"))
    model = classifier(build_transformer_model(config=job["config"], seed=0), job["classes"], seed=0)
    optimizer = {"adafactor": lambda: AdaFactor(5e-4), "adamw": lambda: AdamW(1e-5),
                 "adam": lambda: keras.optimizers.Adam(1e-5)}[job.get("optimizer", "adam")]()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  jit_compile=job["jit"])
    model.optimizer.build(model.trainable_variables)
    token_ids, segment_ids, labels = random_batch(job)
    result = timed_steps(lambda: model.train_on_batch([token_ids, segment_ids], labels),
                         lambda: model.predict_on_batch([token_ids, segment_ids]), job)
    return {**result, "backend": keras.backend.backend(), "jit": job["jit"], "policy": job.get("policy", "float32"),
            "optimizer_class": type(optimizer).__name__}


def transformers_step(job):
    """transformers' BertForSequenceClassification of the same size (its default SDPA attention), train step
    with torch.optim.AdamW and inference: what a PyTorch user would otherwise fine-tune with."""
    import torch
    import transformers

    torch.manual_seed(0)
    c = job["config"]
    model = transformers.BertForSequenceClassification(transformers.BertConfig(
        **{k: c[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                             "intermediate_size", "hidden_act", "hidden_dropout_prob",
                             "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size")},
        num_labels=job["classes"]))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    token_ids, segment_ids, labels = (torch.from_numpy(a).long() for a in random_batch(job))

    def train():
        model.train()
        optimizer.zero_grad()
        model(input_ids=token_ids, token_type_ids=segment_ids, labels=labels).loss.backward()
        optimizer.step()

    def infer():
        model.eval()
        with torch.inference_mode():
            return model(input_ids=token_ids, token_type_ids=segment_ids).logits.numpy()

    return {**timed_steps(train, infer, job), "transformers": transformers.__version__,
            "torch": torch.__version__, "attention": model.config._attn_implementation,
            "threads": torch.get_num_threads(), "optimizer_class": type(optimizer).__name__}


def trick_step(job, flags):
    """A train step of encoder + classifier with our AdaFactor (5e-4) and the tricks ``flags`` names
    ({"ema": 0.999, ...}), built as clue.training.fit builds it; returns the step (no argument)."""
    from clue import tricks
    from clue.heads import classifier
    from clue.models import build_transformer_model
    from clue.optimizers import AdaFactor

    model = classifier(build_transformer_model(config=job["config"], seed=0), job["classes"], seed=0)
    batch, loss = random_batch(job), "sparse_categorical_crossentropy"
    if flags.get("fgm") is not None:
        model = tricks.fgm(model, flags["fgm"])
    if flags.get("rdrop"):
        doubled, loss = tricks.rdrop([batch], loss, flags["rdrop"])
        batch = doubled[0]   # each example twice
    options = tricks.optimizer_options(model, flags.get("ema"), flags.get("layer_lr_decay"))
    model.compile(optimizer=AdaFactor(5e-4, **options), loss=loss)
    model.optimizer.build(model.trainable_variables)
    token_ids, segment_ids, labels = batch
    return lambda: model.train_on_batch([token_ids, segment_ids], labels)


def tricks_steps(job):
    """Per variant of ``job["variants"]`` ({name: trick flags}; the first is plain): the first step (trace),
    then ``repeat`` x ``steps`` rounds of one timed step of every variant in turn, so that load drifts hit
    all alike. Per variant the median step, and the median over rounds of its step / plain's step in the
    same round (``ratio``: neighbours in time, so a drift slower than a round cancels)."""
    from clue.cli import set_random_seed

    set_random_seed(0)
    steps = {name: trick_step(job, flags) for name, flags in job["variants"].items()}
    first = {}
    for name, train in steps.items():
        start = time.perf_counter()
        train()
        first[name] = time.perf_counter() - start
        train()
    times = {name: [] for name in steps}
    for _ in range(job["repeat"] * job["steps"]):
        for name, train in steps.items():
            times[name].append(median_time(train, 1)[0])
    plain = times[next(iter(steps))]
    return {"rows": [{"variant": name, "flags": job["variants"][name], "train_s": statistics.median(t),
                      "train_times": t, "ratio": statistics.median(a / b for a, b in zip(t, plain)),
                      "first_step_s": first[name]} for name, t in times.items()]}


def predict(job):
    """texts/s of ``clue.predict.load(run).predict(texts)`` (tokenize, batch, model, labels) against
    ``model.predict_on_batch`` and ``model.predict`` on the same padded batches (the model alone)."""
    import numpy as np

    from clue import batching, classification, predict as api
    from clue.data import load_json_lines

    texts = [r["sentence"] for r in load_json_lines(Path(job["dev"]), ("sentence",))[:job["n"]]]
    predictor = api.load(job["run"])
    model, batch_size = predictor.model, predictor.batch_size
    examples = classification.encode(predictor.tokenizer, [{"sentence": t} for t in texts], lambda r: (r["sentence"],),
                                     predictor.labels, predictor.maxlen, 0)
    batches = batching.Batches(examples, batching.pad_inputs, batch_size, bucket=batching.BUCKET)
    inputs = [batches[i][0] for i in range(len(batches))]
    ways = {"clue.predict": lambda: predictor.predict(texts),
            "model.predict_on_batch": lambda: [model.predict_on_batch(x) for x in inputs],
            "model.predict": lambda: [model.predict(x, batch_size=batch_size, verbose=0) for x in inputs]}
    same = np.array_equal(np.concatenate([np.asarray(model.predict_on_batch(x)) for x in inputs]).argmax(-1),
                          np.array([predictor.labels.index(p["label"]) for p in predictor.predict(texts)])[batches.order])
    result = {"texts": len(texts), "batch_size": batch_size, "batches": len(inputs), "same_labels": bool(same)}
    for name, way in ways.items():
        way()   # traces
        median, times = median_time(way, job["repeat"])
        result[name] = {"s": median, "times": times, "texts_per_s": len(texts) / median}
    return result


if __name__ == "__main__":
    kind, job_path, result_path = sys.argv[1:]
    result = {"peak": peak, "checkpoint": checkpoint, "step": step, "transformers": transformers_step,
              "tricks": tricks_steps,
              "predict": predict}[kind](json.loads(Path(job_path).read_text()))
    Path(result_path).write_text(json.dumps(result, indent=1), encoding="utf-8")
