"""One benchmark measurement per process, for scripts/benchmark.py.

    python scripts/bench_worker.py KIND JOB.json RESULT.json

KIND is ``peak`` (fp32 matmul GFLOP/s), ``checkpoint`` (write a random Google-format BERT checkpoint for
the other runs to load), ``step`` (our encoder + classifier head: train and inference steps, on whatever
``KERAS_BACKEND`` says) or ``hf`` (Hugging Face BertForSequenceClassification on PyTorch). Each runs in a
fresh process so the backend is chosen at import and peak memory (measured by the parent) is its own.
bert4keras runs in scripts/bench_bert4keras.py (it needs legacy Keras).
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
    for _ in range(job.get("warmup", 1)):
        train()
    train_median, train_times = median_time(train, job["repeat"])
    infer()
    infer_median, infer_times = median_time(infer, job["repeat"])
    tokens = job["batch"] * job["seq"]
    return {"first_step_s": first, "train_s": train_median, "train_times": train_times,
            "infer_s": infer_median, "infer_times": infer_times,
            "train_tokens_per_s": tokens / train_median, "infer_tokens_per_s": tokens / infer_median}


# ---------------------------------------------------------------------------------------------------------


def peak(job):
    """Median GFLOP/s of fp32 matmuls per size and engine: TensorFlow graph, TensorFlow XLA, PyTorch."""
    import numpy as np
    import tensorflow as tf

    results = []
    for m, k, n in job["sizes"]:
        flop = 2 * m * k * n
        a, b = tf.random.normal((m, k)), tf.random.normal((k, n))
        for engine, jit in (("tensorflow", False), ("tensorflow-xla", True)):
            matmul = tf.function(tf.matmul, jit_compile=jit)
            matmul(a, b).numpy()
            seconds, _ = median_time(lambda: matmul(a, b).numpy(), job["repeat"])
            results.append({"engine": engine, "m": m, "k": k, "n": n, "gflops": flop / seconds / 1e9})
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        for m, k, n in job["sizes"]:
            a, b = torch.from_numpy(np.random.randn(m, k).astype("float32")), torch.randn(k, n)
            a @ b
            seconds, _ = median_time(lambda: a @ b, job["repeat"])
            results.append({"engine": f"torch ({torch.get_num_threads()} threads)", "m": m, "k": k, "n": n,
                            "gflops": 2 * m * k * n / seconds / 1e9})
    return {"matmuls": results, "peak_gflops": max(r["gflops"] for r in results)}


def checkpoint(job):
    """Our encoder, randomly initialised with a seed, saved under Google's TF variable names."""
    import numpy as np
    import tensorflow as tf

    from clue.checkpoints import variable_names
    from clue.models import build_transformer_model

    model = build_transformer_model(config=job["config"], seed=job.get("seed", 0))
    pairs = variable_names(model)
    names = [name for _, name in pairs]
    tensors = [np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable) for variable, _ in pairs]
    tf.raw_ops.SaveV2(prefix=job["prefix"], tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=tensors)
    return {"variables": len(names), "parameters": int(sum(t.size for t in tensors))}


def compiled_classifier(job, optimizer, jit="auto"):
    """Our encoder with the task scripts' classifier head ([CLS] -> Dense softmax), compiled, the optimizer
    built eagerly as clue.training.fit does; ``jit`` "auto" compiles as the task scripts do."""
    from clue.heads import classifier
    from clue.models import build_transformer_model

    model = classifier(build_transformer_model(config=job["config"], seed=0), job["classes"], seed=0)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", jit_compile=jit)
    model.optimizer.build(model.trainable_variables)
    return model


def step(job):
    """Train step (Adam, or with ``job["optimizer"] == "adafactor"`` the task scripts' AdaFactor at 5e-4)
    and inference of ``compiled_classifier``, on the backend ``KERAS_BACKEND`` names, XLA per ``job["jit"]``."""
    import keras

    from clue.optimizers import AdaFactor

    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_dtype_policy(job.get("policy", "float32"))
    optimizer = AdaFactor(5e-4) if job.get("optimizer") == "adafactor" else keras.optimizers.Adam(1e-5)
    model = compiled_classifier(job, optimizer, job["jit"])
    token_ids, segment_ids, labels = random_batch(job)
    result = timed_steps(lambda: model.train_on_batch([token_ids, segment_ids], labels),
                         lambda: model.predict_on_batch([token_ids, segment_ids]), job)
    return {**result, "backend": keras.backend.backend(), "jit": job["jit"],
            "policy": job.get("policy", "float32"), "optimizer_class": type(optimizer).__name__}


def hf(job):
    """transformers' BertForSequenceClassification, same size, torch.optim.Adam train step and inference."""
    import torch
    import transformers

    torch.manual_seed(0)
    c = job["config"]
    config = transformers.BertConfig(
        vocab_size=c["vocab_size"], hidden_size=c["hidden_size"], num_hidden_layers=c["num_hidden_layers"],
        num_attention_heads=c["num_attention_heads"], intermediate_size=c["intermediate_size"],
        hidden_act=c["hidden_act"], hidden_dropout_prob=c["hidden_dropout_prob"],
        attention_probs_dropout_prob=c["attention_probs_dropout_prob"],
        max_position_embeddings=c["max_position_embeddings"], type_vocab_size=c["type_vocab_size"],
        num_labels=job["classes"])
    model = transformers.BertForSequenceClassification(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
    token_ids, segment_ids, labels = (torch.from_numpy(a).long() for a in random_batch(job))
    mask = torch.ones_like(token_ids)

    def train():
        model.train()
        optimizer.zero_grad()
        loss = model(input_ids=token_ids, token_type_ids=segment_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        return loss.item()

    def infer():
        model.eval()
        with torch.inference_mode():
            return model(input_ids=token_ids, token_type_ids=segment_ids, attention_mask=mask).logits.numpy()

    result = timed_steps(train, infer, job)
    return {**result, "transformers": transformers.__version__, "torch": torch.__version__,
            "attention": model.config._attn_implementation, "threads": torch.get_num_threads()}


def op_part(name):
    """Which part of the train step a TensorFlow op (by its scoped name) belongs to."""
    if name.startswith(("adafactor/", "adam/", "adamw/")):
        return "optimizer"
    for part, key in (("layer norm", "-Norm"), ("dropout", "dropout"), ("attention", "MultiHeadSelfAttention"),
                      ("feed-forward", "FeedForward"), ("embeddings", "Embedding")):
        if key in (name.lower() if key == "dropout" else name):
            return part
    return "loss and head"


def profile(job):
    """Op-level time of our train step (AdaFactor, as the task scripts) from the TensorFlow profiler:
    per op, the time it ran (threads overlap, so the sum exceeds the step's wall time)."""
    import collections
    import glob
    import tempfile

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    from clue.optimizers import AdaFactor

    model = compiled_classifier(job, AdaFactor(5e-4))
    token_ids, segment_ids, labels = random_batch(job)
    for _ in range(2):
        model.train_on_batch([token_ids, segment_ids], labels)
    logdir = tempfile.mkdtemp(prefix="clue-profile-")
    tf.profiler.experimental.start(logdir)
    step_s, _ = median_time(lambda: model.train_on_batch([token_ids, segment_ids], labels), job["repeat"])
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    space.ParseFromString(open(sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1], "rb").read())
    parts, kinds = collections.Counter(), collections.Counter()
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                name = names.get(event.metadata_id, "")
                if ":" not in name or "/" not in name:   # TensorFlow ops are "scope/name:OpType"
                    continue
                op = name.rsplit(":", 1)[1]
                seconds = event.duration_ps / 1e12 / job["repeat"]
                phase = "backward" if name.startswith("gradient_tape/") else "forward"
                matmul = "MatMul" in op
                part = op_part(name)
                key = "optimizer" if part == "optimizer" else f"{phase} {'matmul' if matmul else part}"
                parts[key] += seconds
                kinds[op.lstrip("_").replace("Mkl", "")] += seconds
    return {"step_s": step_s, "op_seconds": dict(parts.most_common()), "op_types": dict(kinds.most_common(12)),
            "op_total_s": sum(parts.values())}


KINDS = {"peak": peak, "checkpoint": checkpoint, "step": step, "hf": hf, "profile": profile}


def main(kind, job_path, result_path):
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    result = KINDS[kind](job)
    Path(result_path).write_text(json.dumps(result, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:])
