"""Benchmark our CLUE pipeline against bert4keras 0.11.5 on this machine, and write docs/benchmark.md.

    python scripts/benchmark.py            # full run at BERT-base size (under 45 minutes on 2 cores)
    python scripts/benchmark.py --smoke    # tiny model, few steps: about a minute (what CI runs)
    python scripts/benchmark.py --only tokenization --update   # re-measure one item into the report
    python scripts/benchmark.py --gpu      # a GPU machine with JAX and/or PyTorch, no TensorFlow needed

Measures, medians of ``--repeat`` (>= 3) repetitions, every model run in a process of its own (the Keras
backend is fixed at import; peak memory is per process):
1. train and inference steps (tokens/s) at seq 128 x batch 8 and 512 x 2: ours on TensorFlow (with and
   without XLA, and mixed bfloat16), JAX and PyTorch (scripts/bench_worker.py); bert4keras on tf_keras
   (scripts/bench_bert4keras.py); transformers' BERT on PyTorch; model FLOP utilisation against the fp32
   matmul peak measured here;
2. end to end: ``tasks/tnews.py`` and ``tasks/ocnli.py`` (one epoch on the first ``--limit`` train
   examples, dev scoring, test prediction) against a re-creation of the CLUE-bert4keras scripts, both
   loading the same random Google-format checkpoint;
3. tokenization texts/s, ours against bert4keras, ids checked identical;
4. the train step with each leaderboard trick (``clue.tricks``: --ema, --layer-lr-decay, --rdrop, --fgm)
   against the plain one, all in one process and interleaved (``--only tricks``; not in ``--smoke``);
and the peak resident memory of every process. Results go to ``--out`` and, raw, to ``--json``.

``--gpu`` leaves the GPU visible and runs what needs no TensorFlow: item 1's JAX, PyTorch and transformers
rows (fp32 and mixed bfloat16, batches 32 x 128 and 8 x 512) and item 2's tnews run of ours on JAX and on
PyTorch, from a random safetensors checkpoint; its report is docs/benchmark_gpu.md.
"""

import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from clue.paths import write_atomic  # noqa: E402

WORKER, BERT4KERAS_SIDE = REPO / "scripts" / "bench_worker.py", REPO / "scripts" / "bench_bert4keras.py"
LEGACY = {"TF_USE_LEGACY_KERAS": "1", "TF_KERAS": "1"}   # bert4keras runs on tf_keras
OURS, BERT4KERAS = "ours, TensorFlow", "bert4keras 0.11.5, tf_keras"   # OURS: what the task scripts run
# the same two with the baselines' optimizer (ours: clue.optimizers.AdaFactor; bert4keras: its own, patched)
OURS_ADAFACTOR, BERT4KERAS_ADAFACTOR = f"{OURS}, AdaFactor", f"{BERT4KERAS}, AdaFactor"
# the PyTorch rows: ours with clue.optimizers.AdamW against transformers with torch.optim.AdamW
OURS_TORCH, TRANSFORMERS = "ours, PyTorch, AdamW", "transformers, PyTorch, AdamW"
# e2e: 1.4x since both pipelines train with the baselines' AdaFactor (issue 13; 1.5x before, against other optimizers)
TARGETS = {"e2e": 1.4, "tokenization": 10.0, "mfu": 0.5,
           "torch_memory": 1.2, "jax_vs_tensorflow": 1.1}   # issue 20: vs transformers' peak, vs our TF step

BASE = dict(vocab_size=21128, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
            intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1,
            attention_probs_dropout_prob=0.1, max_position_embeddings=512, type_vocab_size=2,
            initializer_range=0.02)   # Google's chinese_L-12_H-768_A-12
TINY = dict(BASE, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)

# Item 1: (name, environment, job options); bert4keras's row runs scripts/bench_bert4keras.py under tf_keras.
IMPLEMENTATIONS = [
    ("ours, TensorFlow + XLA", {"KERAS_BACKEND": "tensorflow"}, {"jit": True}),
    (OURS, {"KERAS_BACKEND": "tensorflow"}, {"jit": False}),
    ("ours, TensorFlow, mixed_bfloat16", {"KERAS_BACKEND": "tensorflow"}, {"jit": False, "policy": "mixed_bfloat16"}),
    ("ours, JAX", {"KERAS_BACKEND": "jax"}, {"jit": True}),
    (OURS_TORCH, {"KERAS_BACKEND": "torch"}, {"jit": False, "optimizer": "adamw"}),
    (TRANSFORMERS, {"KERAS_BACKEND": "torch"}, {"kind": "transformers", "optimizer": "adamw"}),
    (BERT4KERAS, LEGACY, {}),
    ("ours, JAX, mixed_bfloat16", {"KERAS_BACKEND": "jax"}, {"jit": True, "policy": "mixed_bfloat16"}),
    ("ours, PyTorch, AdamW, mixed_bfloat16", {"KERAS_BACKEND": "torch"},
     {"jit": False, "optimizer": "adamw", "policy": "mixed_bfloat16"}),
    (OURS_ADAFACTOR, {"KERAS_BACKEND": "tensorflow"}, {"jit": False, "optimizer": "adafactor"}),
    (BERT4KERAS_ADAFACTOR, LEGACY, {"optimizer": "adafactor"}),
]
GPU_IMPLEMENTATIONS = ["ours, JAX", "ours, JAX, mixed_bfloat16", OURS_TORCH, "ours, PyTorch, AdamW, mixed_bfloat16",
                       TRANSFORMERS]
GPU_BACKENDS = {"ours, JAX": "jax", "ours, PyTorch": "torch"}   # --gpu's end-to-end pipelines
E2E = dict(batch_size=32, maxlen=128, lr=5e-4, epochs=1)   # both pipelines: the baselines' tnews/ocnli flags
# Item 4: the train step with each trick, as ratios to the plain one (our TensorFlow backend, our AdaFactor)
TRICKS = {"plain": {}, "--ema 0.999": {"ema": 0.999}, "--layer-lr-decay 0.9": {"layer_lr_decay": 0.9},
          "--rdrop 1": {"rdrop": 1.0}, "--fgm 0.5": {"fgm": 0.5}}
TOKEN_SETS = ("mix of all fields", "tnews sentence", "afqmc pair", "ocnli pair", "iflytek sentence",
              "cmrc2018 q+context")
SETTINGS = {
    "full": dict(config=BASE, shapes=[(128, 8), (512, 2)], implementations=[i[0] for i in IMPLEMENTATIONS],
                 tasks=("tnews", "ocnli"), limit=1280, repeat=3, e2e_repeat=3, keep_outputs=False, texts=20000,
                 predict_texts=1280, token_sets=TOKEN_SETS, trick_shape=(128, 8), trick_steps=3,
                 peak_sizes=[(1024, 768, 3072), (1024, 3072, 768), (2048, 2048, 2048), (3072, 3072, 3072)]),
    # --gpu: the JAX and PyTorch rows and our end-to-end run on each, with no TensorFlow (issue 20)
    "gpu": dict(config=BASE, shapes=[(128, 32), (512, 8)], implementations=GPU_IMPLEMENTATIONS, tasks=("tnews",),
                limit=5120, repeat=10, e2e_repeat=1, keep_outputs=False),
    # CI: every kind of process once, on a 2-layer width-64 model; the figures mean nothing
    "smoke": dict(config=TINY, shapes=[(32, 4)], implementations=[OURS, BERT4KERAS, OURS_ADAFACTOR, BERT4KERAS_ADAFACTOR],
                  tasks=("tnews",), limit=64,
                  repeat=3, e2e_repeat=1, keep_outputs=True, texts=200, predict_texts=64, token_sets=("tnews sentence", "ocnli pair"),
                  peak_sizes=[(256, 256, 256)]),
}


class Runner:
    """Runs each measurement as a process, its log and job files in ``work``; fails with the log's tail.
    CPU time and peak RSS are the process's own (``wait4`` rusage)."""

    def __init__(self, work, gpu=False):
        self.work, self.count, self.gpu = Path(work), 0, gpu

    def job(self, job):
        self.count += 1
        path = self.work / f"{self.count:02d}.job.json"
        path.write_text(json.dumps(job))
        return path

    def __call__(self, name, script, *args, env=None, result=True):
        self.count += 1
        log, out = self.work / f"{self.count:02d}.log", self.work / f"{self.count:02d}.result.json"
        command = [sys.executable, str(script), *map(str, args)] + ([str(out)] if result else [])
        environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONHASHSEED="0", PYTHONPATH=str(REPO),
                           **({} if self.gpu else {"CUDA_VISIBLE_DEVICES": ""}), **(env or {}))
        print(f"[{time.strftime('%H:%M:%S')}] {name} ...", end=" ", flush=True)
        with open(log, "w") as output:
            start = time.perf_counter()
            proc = subprocess.Popen(command, env=environment, stdout=output, stderr=subprocess.STDOUT, cwd=REPO)
            _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise RuntimeError(f"{name} failed (exit {code}), log {log}:\n{log.read_text(errors='replace')[-3000:]}")
        cpu, rss = usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
        print(f"{seconds:.1f} s (CPU {cpu:.1f} s), {rss:.0f} MB", flush=True)
        data = json.loads(out.read_text()) if result else {}
        return {**data, "wall_s": seconds, "cpu_s": cpu, "peak_rss_mb": rss}


# ---------------------------------------------------------------------------------------------------------
# The measurements


def make_model_dir(run, folder, config, vocab_path):
    """bert_config.json, vocab.txt (a link to the real vocabulary) and a random checkpoint: Google's format,
    or with --gpu (no TensorFlow) Hugging Face safetensors and a preset (preset.json) that names it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bert_config.json").write_text(json.dumps(config, indent=1))
    (folder / "vocab.txt").unlink(missing_ok=True)
    (folder / "vocab.txt").symlink_to(Path(vocab_path).resolve())
    checkpoint = "model.safetensors" if run.gpu else "bert_model.ckpt"
    if run.gpu:   # configs/bert-base.json names Google's checkpoint
        (folder / "preset.json").write_text(json.dumps({"name": "bert-base-safetensors", "family": "bert", "files": {
            "config": "bert_config.json", "checkpoint": checkpoint, "vocab": "vocab.txt"}}))
    run("random BERT checkpoint", WORKER, "checkpoint", run.job({"config": config, "prefix": str(folder / checkpoint)}),
        env={"KERAS_BACKEND": "jax"} if run.gpu else None)
    return folder


def measure_steps(run, setting, config_path):
    results = []
    for seq, batch in setting["shapes"]:
        for name, env, options in IMPLEMENTATIONS:
            if name not in setting["implementations"]:
                continue
            row = {"name": name, "seq": seq, "batch": batch, "optimizer": options.get("optimizer", "adam")}
            options = dict(options)
            kind = options.pop("kind", "step")
            needs = ["bert4keras", "tf_keras"] if env is LEGACY else [env["KERAS_BACKEND"]]
            needs += ["transformers"] if kind == "transformers" else []
            missing = [m for m in needs if importlib.util.find_spec(m) is None]
            if missing:
                results.append({**row, "skipped": f"{', '.join(missing)} not installed"})
                continue
            job = run.job({"config": setting["config"], "config_path": str(config_path), "seq": seq,
                           "batch": batch, "classes": 2, "repeat": setting["repeat"], **options})
            script = BERT4KERAS_SIDE if env is LEGACY else WORKER
            results.append({**row, **run(f"{name}, seq {seq} x batch {batch}", script, kind, job, env=env)})
    return results


def measure_e2e(run, setting, model_dir, data_dir):
    """Each pipeline ``e2e_repeat`` times per task, alternating so that drifts in load hit both alike."""
    results = []
    for task in setting["tasks"]:
        backends = {pipeline: backend for pipeline, backend in GPU_BACKENDS.items()   # --gpu: those installed
                    if importlib.util.find_spec(backend)} if run.gpu else {"ours": "tensorflow"}
        runs = {**({} if run.gpu else {"bert4keras": []}), **{pipeline: [] for pipeline in backends}}
        for r in range(setting["e2e_repeat"]):
            for pipeline, rows in runs.items():
                out = run.work / f"e2e_{task}_{pipeline.replace(', ', '_')}_{r}"
                shutil.rmtree(out, ignore_errors=True)
                if pipeline in backends:
                    flags = [f for key, value in E2E.items() for f in (f"--{key.replace('_', '-')}", value)]
                    rows.append(run(f"e2e {task}, {pipeline}", REPO / "tasks" / f"{task}.py", "--data-dir", data_dir,
                                    "--model", model_dir / "preset.json" if run.gpu else "bert-base", "--model-dir", model_dir,
                                    "--optimizer", "adafactor", "--limit", setting["limit"], "--output-dir", out,
                                    "--verbose", 0, "--seed", 0, *flags,
                                    env={"KERAS_BACKEND": backends[pipeline]}, result=False))
                else:
                    job = run.job({"task": task, "data_dir": str(data_dir), "output_dir": str(out),
                                   "vocab_path": str(model_dir / "vocab.txt"), "limit": setting["limit"],
                                   "config_path": str(model_dir / "bert_config.json"),
                                   "checkpoint_path": str(model_dir / "bert_model.ckpt"), **E2E})
                    rows.append(run(f"e2e {task}, bert4keras", BERT4KERAS_SIDE, "e2e", job, env=LEGACY, result=False))
                if not setting["keep_outputs"]:   # BERT-base weights and backups: 1.3 GB a run
                    shutil.rmtree(out, ignore_errors=True)
        for pipeline, rows in runs.items():
            results.append({"task": task, "pipeline": pipeline, "limit": setting["limit"],
                            "steps": -(-setting["limit"] // E2E["batch_size"]),
                            "wall_s": statistics.median(r["wall_s"] for r in rows),
                            "wall_all": [r["wall_s"] for r in rows],
                            "cpu_s": statistics.median(r["cpu_s"] for r in rows),
                            "peak_rss_mb": max(r["peak_rss_mb"] for r in rows)})
    return results


def measure_tricks(run, setting):
    """Item 4: one process times every variant of ``TRICKS``, in turn within each repetition."""
    seq, batch = setting["trick_shape"]
    job = run.job({"config": setting["config"], "seq": seq, "batch": batch, "classes": 2,
                   "repeat": setting["repeat"], "steps": setting["trick_steps"], "variants": TRICKS})
    measured = run(f"tricks, seq {seq} x batch {batch}", WORKER, "tricks", job, env={"KERAS_BACKEND": "tensorflow"})
    return {"seq": seq, "batch": batch, "steps": setting["trick_steps"], "repeat": setting["repeat"],
            "peak_rss_mb": measured["peak_rss_mb"], "rows": measured["rows"]}


def measure_predict(run, setting, model_dir, data_dir):
    """A tnews run trained for one batch on the random checkpoint, then the predict API's texts/s on the
    first ``predict_texts`` dev sentences against the model alone on the same batches."""
    out = run.work / "predict_tnews"
    shutil.rmtree(out, ignore_errors=True)
    run("tnews run to predict with", REPO / "tasks" / "tnews.py", "--data-dir", data_dir, "--model", "bert-base",
        "--model-dir", model_dir, "--limit", E2E["batch_size"], "--epochs", 1, "--output-dir", out, "--verbose", 0,
        "--batch-size", E2E["batch_size"], "--maxlen", E2E["maxlen"], env={"KERAS_BACKEND": "tensorflow"},
        result=False)
    job = run.job({"run": str(out), "dev": str(Path(data_dir) / "tnews" / "dev.json"),
                   "n": setting["predict_texts"], "repeat": setting["repeat"]})
    result = run("predict tnews texts", WORKER, "predict", job, env={"KERAS_BACKEND": "tensorflow"})
    if not setting["keep_outputs"]:
        shutil.rmtree(out, ignore_errors=True)
    return result


def token_set(name, data_dir, n):
    """(texts, second texts or None, maxlen) of a tokenization set, drawn deterministically from the files."""
    from clue.data import load_cmrc2018, load_json_lines
    from tokenizer_parity import collect, sample

    if name == "mix of all fields":
        return [t for _, t in sample(collect(data_dir)[0], n)], None, None
    if name == "cmrc2018 q+context":
        rows = load_cmrc2018(data_dir / "cmrc2018" / "cmrc2018_dev.json")[:n]
        return [r["question"] for r in rows], [r["context"] for r in rows], 512
    task, kind = name.split()
    fields = ("sentence1", "sentence2") if kind == "pair" else ("sentence",)
    file = {"tnews": "train.json", "ocnli": "train.50k.json"}.get(task, "dev.json")
    rows = load_json_lines(data_dir / task / file, fields)[:n]
    return [r[fields[0]] for r in rows], [r[fields[-1]] for r in rows] if kind == "pair" else None, \
        128 if kind == "pair" else None


def measure_tokenization(run, setting, data_dir, vocab_path):
    rows = []
    for name in setting["token_sets"]:
        texts, seconds, maxlen = token_set(name, Path(data_dir), setting["texts"])
        items = [[a, None if seconds is None else b] for a, b in zip(texts, seconds or texts)]
        job = run.job({"items": items, "maxlen": maxlen, "vocab_path": str(vocab_path), "rounds": setting["repeat"]})
        measured = run(f"tokenization, {name}", BERT4KERAS_SIDE, "tokenize", job, env=LEGACY)
        t, n = measured["seconds"], len(items)   # CPU seconds per variant -> texts/s, and ratios to bert4keras
        rows.append({"set": name, "n": n, **{k: n / v for k, v in t.items()},
                     **{"ratio" + k[4:]: t["bert4keras"] / v for k, v in t.items() if k.startswith("ours")},
                     "identical": measured["identical"]})
    return rows


# ---------------------------------------------------------------------------------------------------------
# FLOPs, targets and the report


def matmul_params(config):
    """Weights that multiply activations, per token: per layer Q, K, V and the attention output (H x H)
    and the two feed-forward matrices (H x I). Embedding lookups are gathers; the head is negligible."""
    h, i, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    return layers * (4 * h * h + 2 * h * i)


def step_flops(config, batch, seq, train=True):
    """Matmul FLOPs of one step: forward 2 * params * tokens plus attention's two batched matmuls
    (Q K^T and probs V, 2 * 2 * batch * seq^2 * H per layer); a train step is 3x the forward (the backward
    pass multiplies twice as much: gradients of inputs and of weights)."""
    forward = 2 * matmul_params(config) * batch * seq \
        + 4 * config["num_hidden_layers"] * batch * seq * seq * config["hidden_size"]
    return 3 * forward if train else forward


def summary(results):
    """Derived figures (FLOP/s, MFU, ratios) added to the rows, and each target's verdict."""
    targets, config = [], results["config"]
    peak = results.get("peak", {}).get("peak_gflops")
    steps = [r for r in results.get("steps", []) if "skipped" not in r]
    # each row against bert4keras's row of the same shape and optimizer
    bert4keras = {(r["seq"], r.get("optimizer", "adam")): r for r in steps if r["name"].startswith(BERT4KERAS)}
    for row in steps:
        row["train_gflops"] = step_flops(config, row["batch"], row["seq"]) / row["train_s"] / 1e9
        row["infer_gflops"] = step_flops(config, row["batch"], row["seq"], train=False) / row["infer_s"] / 1e9
        if peak:
            row.update(train_mfu=row["train_gflops"] / peak, infer_mfu=row["infer_gflops"] / peak)
        base = bert4keras.get((row["seq"], row.get("optimizer", "adam")))
        if base:
            row["train_vs_bert4keras"] = base["train_s"] / row["train_s"]
            row["infer_vs_bert4keras"] = base["infer_s"] / row["infer_s"]

    def memory(what, ours, theirs):
        targets.append({"target": f"peak memory <= bert4keras, {what}", "met": ours <= theirs,
                        "figure": f"{ours:,.0f} vs {theirs:,.0f} MB"})

    ours = [r for r in steps if r["name"] == OURS]
    for row in ours if peak else ():
        targets.append({"target": f"MFU >= 50% of matmul peak, train step seq {row['seq']} x {row['batch']}",
                        "figure": f"{row['train_mfu']:.0%} ({row['train_gflops']:.0f} of {peak:.0f} GFLOP/s)",
                        "met": row["train_mfu"] >= TARGETS["mfu"]})
    for row in (r for r in ours if (r["seq"], "adam") in bert4keras):
        memory(f"train seq {row['seq']} x {row['batch']}", row["peak_rss_mb"],
               bert4keras[(row["seq"], "adam")]["peak_rss_mb"])
    for row in (r for r in steps if r["name"] == OURS_ADAFACTOR and (r["seq"], "adafactor") in bert4keras):
        theirs = bert4keras[(row["seq"], "adafactor")]
        targets.append({"target": f"AdaFactor train step <= bert4keras's AdaFactor, seq {row['seq']} x {row['batch']}",
                        "figure": f"{row['train_s']:.3f} vs {theirs['train_s']:.3f} s per step "
                                  f"({row['train_vs_bert4keras']:.2f}x)",
                        "met": row["train_s"] <= theirs["train_s"]})
    by_name = {(r["name"], r["seq"]): r for r in steps}
    for row in (r for r in steps if r["name"] == OURS_TORCH and (TRANSFORMERS, r["seq"]) in by_name):
        theirs, shape = by_name[TRANSFORMERS, row["seq"]], f"seq {row['seq']} x {row['batch']}"
        targets.append({"target": f"PyTorch train step <= transformers', {shape}",
                        "figure": f"{row['train_s']:.3f} vs {theirs['train_s']:.3f} s", "met": row["train_s"] <= theirs["train_s"]})
        ratio = row["peak_rss_mb"] / theirs["peak_rss_mb"]
        targets.append({"target": f"PyTorch peak memory <= {TARGETS['torch_memory']}x transformers', {shape}",
                        "figure": f"{row['peak_rss_mb']:,.0f} vs {theirs['peak_rss_mb']:,.0f} MB ({ratio:.2f}x)",
                        "met": ratio <= TARGETS["torch_memory"]})
    for row in (r for r in steps if r["name"] == "ours, JAX" and (OURS, r["seq"]) in by_name):
        ratio = row["train_s"] / by_name[OURS, row["seq"]]["train_s"]
        targets.append({"target": f"JAX train step <= {TARGETS['jax_vs_tensorflow']}x TensorFlow's, seq {row['seq']} x {row['batch']}",
                        "figure": f"{row['train_s']:.3f} vs {by_name[OURS, row['seq']]['train_s']:.3f} s ({ratio:.2f}x)",
                        "met": ratio <= TARGETS["jax_vs_tensorflow"]})
    e2e = results.get("e2e", [])
    for task in dict.fromkeys(r["task"] for r in e2e):
        theirs = next((r for r in e2e if r["task"] == task and r["pipeline"] == "bert4keras"), None)
        ours = next((r for r in e2e if r["task"] == task and r["pipeline"] == "ours"), None)
        if not (theirs and ours):   # --gpu: no bert4keras (it needs TensorFlow)
            continue
        theirs["speedup"], ours["speedup"] = 1.0, theirs["wall_s"] / ours["wall_s"]
        targets.append({"target": f"end to end >= {TARGETS['e2e']}x bert4keras, {task}", "met": ours["speedup"] >= TARGETS["e2e"],
                        "figure": f"{ours['speedup']:.2f}x ({theirs['wall_s']:.0f} s -> {ours['wall_s']:.0f} s)"})
        memory(f"end to end {task}", ours["peak_rss_mb"], theirs["peak_rss_mb"])
    tokenization = results.get("tokenization", [])
    if tokenization:
        worst = min(tokenization, key=lambda r: r["ratio_arrays"])
        identical = all(r["identical"] for r in tokenization)
        targets.append({"target": "tokenization >= 10x bert4keras, every set (ours as the task pipeline calls "
                                  "it: `encode_batch(arrays=True)`)",
                        "figure": f"{worst['ratio_arrays']:.1f}x at worst ({worst['set']}); ids identical: {identical}",
                        "met": worst["ratio_arrays"] >= TARGETS["tokenization"] and identical})
    return {"targets": targets}


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def fmt(x, spec=",.0f"):
    return "-" if x is None else format(x, spec)


def loads(values):
    return "/".join(f"{x:.2f}" for x in values)


def render(results):
    m, config, setting = results["machine"], results["config"], results["setting"]
    updates = "".join(f" Items {', '.join(u['items'])} re-measured by `{u['command']}` ({u['date']}, "
                      f"{u.get('minutes', 0):.0f} min, load average at start {loads(u['load_start'])}"
                      + (f"; **on another machine, {u['machine']['cpu']}**: compare its rows with each other only"
                         if u.get("machine", m)["cpu"] != m["cpu"] else "") + ")."
                      for u in results.get("updates", []))
    parts = [
        f"Generated by `{results['command']}` ({results['mode']} run, {results['date']}, {results['minutes']:.0f} "
        f"min). Raw numbers: `{results.get('raw', 'docs/benchmark.json')}`.{updates}", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM, "
        f"{'GPU ' + '; '.join(m['gpus']) if m.get('gpus') else 'no GPU'}; {m['os']}, Python "
        f"{m['python']}. " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".",
        f"Load average (1/5/15 min) at start {loads(results['load_start'])}, at end {loads(results['load_end'])}.",
        *(["", "A `--gpu` run: no TensorFlow, so neither bert4keras nor our TensorFlow rows, and the end-to-end "
            "runs are ours on JAX and on PyTorch from a random safetensors checkpoint (the same weights for both)."]
          if "gpu" in results["mode"] else []),
        "", f"Model: BERT, hidden {config['hidden_size']}, {config['num_hidden_layers']} layers, "
        f"{config['num_attention_heads']} heads, intermediate {config['intermediate_size']}, vocab "
        f"{config['vocab_size']}, dropout {config['hidden_dropout_prob']}, fp32. Medians of {setting['repeat']} "
        "repetitions.", "", "## Targets", "",
        table(["target", "measured", "met"],
              [[t["target"], t["figure"], "yes" if t["met"] else "**no**"] for t in results["summary"]["targets"]])]
    if "peak" in results:
        parts += ["", "## fp32 matmul peak of this machine", "",
                  f"Best median rate of an (m x k) @ (k x n) fp32 matmul: **{results['peak']['peak_gflops']:.0f} "
                  "GFLOP/s**, the reference of the FLOP utilisation below.", "",
                  table(["engine", "m x k x n", "GFLOP/s"], [[r["engine"], f"{r['m']} x {r['k']} x {r['n']}",
                                                             fmt(r["gflops"])] for r in results["peak"]["matmuls"]])]
    if "steps" in results:
        rows = [[r["name"], f"{r['seq']} x {r['batch']}", *(["-"] * 7 + [r["skipped"]] if "skipped" in r else [
            fmt(r["train_tokens_per_s"]), f"{r['train_s']:.3f}", fmt(r.get("train_vs_bert4keras"), ".2f") + "x",
            fmt(r.get("train_mfu"), ".0%"), fmt(r["infer_tokens_per_s"]), fmt(r.get("infer_mfu"), ".0%"),
            fmt(r["peak_rss_mb"]), f"first step {r['first_step_s']:.0f} s"])] for r in results["steps"]]
        h, i, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
        parts += ["", "## 1. Train and inference steps (random full-length batches)", "",
                  "Train step: forward, backward and an Adam update of the classifier ([CLS] -> Dense), the same "
                  "optimizer algorithm everywhere (keras / tf_keras Adam); the AdaFactor rows train with the "
                  "baselines' optimizer instead (ours clue.optimizers.AdaFactor, bert4keras its own, patched for "
                  "tf_keras), each against bert4keras's row of the same optimizer. Inference: forward only. tokens/s = "
                  "batch x seq / median step time. MFU = analytic matmul FLOPs per step / time / matmul peak.", "",
                  table(["implementation", "seq x batch", "train tokens/s", "train s/step", "vs bert4keras",
                         "train MFU", "infer tokens/s", "infer MFU", "peak RSS MB", "note"], rows), "",
                  "FLOP accounting (matmuls only; embeddings are gathers): per token the dense layers multiply by "
                  f"P = L (4 H^2 + 2 H I) = {layers} x (4 x {h}^2 + 2 x {h} x {i}) = {matmul_params(config):,} "
                  "weights; forward FLOPs = 2 P B T + 4 L B T^2 H (attention scores and weighted sum), train = 3 x "
                  f"forward. Seq 128 x 8: {step_flops(config, 8, 128) / 1e9:.0f} GFLOP per train step; seq 512 x "
                  f"2: {step_flops(config, 2, 512) / 1e9:.0f} GFLOP."]
    if "e2e" in results:
        hyper, limit = setting["e2e"], setting["limit"]
        lr = f"{hyper['lr']:.0e}".replace("e-0", "e-")   # 5e-4, as the flag is written
        rows = [[r["task"], r["pipeline"], r["steps"], f"{r['wall_s']:.1f}",
                 ", ".join(f"{x:.1f}" for x in r["wall_all"]), f"{r['cpu_s']:.0f}",
                 fmt(r.get("speedup", 1.0), ".2f") + "x", fmt(r["peak_rss_mb"])]
                for r in results["e2e"]]
        parts += ["", "## 2. End to end on real CLUE text", "",
                  f"{hyper['epochs']} epoch{'s' if hyper['epochs'] > 1 else ''} on the first {limit} train examples "
                  f"(batch {hyper['batch_size']}, maxlen {hyper['maxlen']}, AdaFactor lr {lr}: ours clue.optimizers.AdaFactor, "
                  "bert4keras its own), dev accuracy after "
                  "each epoch with the best weights saved, then (ocnli) the test file predicted and written; the "
                  f"first {limit} dev and test examples. Wall time of the whole process, Python start to exit, as a "
                  "user runs it: ours is `python tasks/<task>.py --model bert-base --model-dir <dir> --limit N` "
                  "with these flags, bert4keras is scripts/bench_bert4keras.py (a re-creation of the "
                  "CLUE-bert4keras scripts, see its docstring). Both load the same random Google-format BERT "
                  "checkpoint.", "",
                  table(["task", "pipeline", "train steps", "median s", "all runs s", "CPU s", "speed-up",
                         "peak RSS MB"], rows)]
    if "tokenization" in results:
        rows = [[r["set"], r["n"], fmt(r["bert4keras"]), fmt(r["ours"]), fmt(r["ours_batch"]), fmt(r["ours_arrays"]),
                 f"{r['ratio']:.1f}x", f"{r['ratio_batch']:.1f}x", f"**{r['ratio_arrays']:.1f}x**",
                 "yes" if r["identical"] else "**NO**"] for r in results["tokenization"]]
        parts += ["", "## 3. Tokenization", "",
                  "texts/s in CPU time, best of the repetitions (`tokenize` in scripts/bench_bert4keras.py): "
                  "bert4keras `encode`; ours `encode` one text at a time, `encode_batch` (lists, like `encode`) and "
                  "`encode_batch(arrays=True)` (int32 views into one buffer: what the task pipeline calls, and the "
                  "target's figure); all four compared id for id.", "",
                  table(["texts", "n", "bert4keras/s", "ours/s", "ours batch/s", "ours arrays/s", "ratio",
                         "batch ratio", "arrays ratio", "identical ids"], rows)]
    if "tricks" in results:
        tricks = results["tricks"]
        rows = [[r["variant"], f"{r['train_s']:.3f}", f"{min(r['train_times']):.3f} - {max(r['train_times']):.3f}",
                 f"**{r['ratio']:.2f}x**", f"{r['first_step_s']:.0f} s"] for r in tricks["rows"]]
        parts += ["", "## 4. Leaderboard tricks: train-step cost", "",
                  f"Train step of encoder + classifier at seq {tricks['seq']} x batch {tricks['batch']} on our "
                  "TensorFlow backend with our AdaFactor (5e-4), each trick built as `clue.training.fit` builds "
                  "it from its flag (`clue.tricks`); --rdrop trains on each example twice (batch "
                  f"{2 * tricks['batch']}). One process holds every variant and times {tricks['repeat']} x "
                  f"{tricks['steps']} rounds of one step of each in turn, so that load drifts hit all alike; "
                  "\"vs plain\" is the median over rounds of the variant's step / plain's step in the same round.",
                  "", table(["variant", "median s/step", "range s", "vs plain", "first step (trace)"], rows)]
    if "predict" in results:
        p = results["predict"]
        rows = [[name, f"{p[name]['s']:.2f}", fmt(p[name]["texts_per_s"]),
                 f"{p['model.predict_on_batch']['s'] / p[name]['s']:.2f}x"]
                for name in ("clue.predict", "model.predict_on_batch", "model.predict")]
        parts += ["", "## 5. Predicting with a trained run", "",
                  f"The first {p['texts']} tnews dev sentences, the model above (a tnews run of one batch on the random "
                  f"checkpoint), batch {p['batch_size']} ({p['batches']} batches): `clue.predict.load(run).predict(texts)` "
                  "(tokenize, bucket, model, labels) against the model alone on the same padded batches, "
                  "`model.predict_on_batch` per batch (what clue.predict runs) and Keras's `model.predict` per "
                  f"batch. Medians of {len(p['clue.predict']['times'])}; the same labels: "
                  f"{'yes' if p['same_labels'] else '**NO**'}.", "",
                  table(["way", "median s", "texts/s", "vs model.predict_on_batch"], rows)]
    return "\n".join(parts) + "\n"


START, END = "<!-- generated by scripts/benchmark.py: start -->", "<!-- generated by scripts/benchmark.py: end -->"


def write_report(path, text):
    """``text`` between the START and END markers of ``path``, keeping what is written around them (the
    analysis); a new file gets the generated part alone."""
    block = f"{START}\n{text}{END}\n"
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    if START in old and END in old:
        after = old[old.index(END) + len(END):].lstrip("\n")
        block = old[:old.index(START)] + block + ("\n" + after if after else "")
    else:
        block = "# Benchmark: ours vs bert4keras\n\n" + block
    write_atomic(path, block)


def machine():
    from importlib.metadata import PackageNotFoundError, version

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")
    versions = {}
    for package in ("tensorflow", "keras", "tf-keras", "jax", "torch", "transformers", "bert4keras", "numpy"):
        try:
            versions[package.replace("-", "_")] = version(package)
        except PackageNotFoundError:
            versions[package.replace("-", "_")] = "not installed"
    memory = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 ** 2
    try:
        gpus = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=60).stdout.strip().splitlines()
    except (OSError, subprocess.TimeoutExpired):
        gpus = []
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(memory, 1), "python": platform.python_version(),
            "os": platform.platform(), "versions": versions, "gpus": gpus}


ITEMS = ("peak", "steps", "e2e", "tokenization", "tricks", "predict")
GPU_ITEMS = {"steps", "e2e"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny model and sizes: about a minute, for CI")
    parser.add_argument("--gpu", action="store_true", help="on a GPU machine without TensorFlow: the step rows of "
                        "JAX, PyTorch and transformers and our end-to-end tnews run on JAX and on PyTorch "
                        "(default report docs/benchmark_gpu.md; with --smoke, the tiny model)")
    parser.add_argument("--data-dir", default=os.environ.get("CLUE_DATA_DIR", str(SHARED / "clue_data")))
    parser.add_argument("--vocab", default=str(SHARED / "vocab" / "chinese_bert_vocab.txt"))
    parser.add_argument("--repeat", type=int, help="repetitions per measurement (at least 3)")
    parser.add_argument("--e2e-repeat", type=int, help="end to end: runs per pipeline and task (default --repeat; "
                        "fewer than 3 when time is short: the report lists every run)")
    parser.add_argument("--limit", type=int,
                        help=f"end to end: train/dev/test examples (steps = limit / {E2E['batch_size']})")
    parser.add_argument("--tasks", nargs="+", choices=("tnews", "ocnli"), help="end-to-end tasks (default both)")
    parser.add_argument("--only", nargs="+", choices=ITEMS, help="run only these items")
    parser.add_argument("--rows", nargs="+", choices=[i[0] for i in IMPLEMENTATIONS], metavar="NAME",
                        help="steps: only these implementations (with --update the other rows are kept): "
                             + "; ".join(repr(i[0]) for i in IMPLEMENTATIONS))
    parser.add_argument("--update", action="store_true", help="merge the items run into the existing --json "
                        "results and re-render --out from them (the report says which items ran when)")
    parser.add_argument("--out", help="markdown report (default docs/benchmark.md; none with --smoke)")
    parser.add_argument("--json", help="raw results (default docs/benchmark.json; none with --smoke)")
    parser.add_argument("--work", help="folder for checkpoints, logs and outputs (default: a temporary one)")
    args = parser.parse_args(argv)
    setting = dict(SETTINGS["smoke" if args.smoke else "gpu" if args.gpu else "full"])
    if args.gpu and args.smoke:
        setting.update(implementations=GPU_IMPLEMENTATIONS, tasks=("tnews",))
    if args.repeat is not None:
        if args.repeat < 3:
            parser.error("--repeat must be at least 3 (the report gives medians)")
        setting["repeat"] = setting["e2e_repeat"] = args.repeat
    if args.e2e_repeat is not None:
        if args.e2e_repeat < 1:
            parser.error("--e2e-repeat must be at least 1")
        setting["e2e_repeat"] = args.e2e_repeat
    setting["limit"], setting["tasks"] = args.limit or setting["limit"], tuple(args.tasks or setting["tasks"])
    if args.rows:
        setting["implementations"] = [name for name in setting["implementations"] if name in args.rows]
    report = "benchmark_gpu" if args.gpu else "benchmark"
    out = args.out or (None if args.smoke else str(REPO / "docs" / f"{report}.md"))
    json_out = args.json or (None if args.smoke else str(REPO / "docs" / f"{report}.json"))
    only = set(args.only or (ITEMS if "trick_shape" in setting else set(ITEMS) - {"tricks"}))
    if args.gpu:
        if set(args.only or ()) - GPU_ITEMS:
            parser.error(f"--gpu runs {' and '.join(sorted(GPU_ITEMS))} only (the others need TensorFlow)")
        only = set(args.only or GPU_ITEMS)
    if args.rows and not args.update and set(args.rows) != set(setting["implementations"]):
        parser.error("--rows measures part of the step table: use it with --update")
    if args.update and not (json_out and Path(json_out).is_file()):
        parser.error(f"--update merges into the results of an earlier run, but {json_out} does not exist")

    work = Path(args.work or tempfile.mkdtemp(prefix="clue-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    run, started = Runner(work, gpu=args.gpu), time.time()
    command = " ".join(["python scripts/benchmark.py", *(argv if argv is not None else sys.argv[1:])])
    date = time.strftime("%Y-%m-%d %H:%M %Z")
    if args.update:
        results = json.loads(Path(json_out).read_text(encoding="utf-8"))
        results.setdefault("updates", []).append({"command": command, "date": date, "items": sorted(only),
                                                  "load_start": os.getloadavg(), "machine": machine()})
    else:
        results = {"mode": ("smoke " if args.smoke else "") + ("gpu" if args.gpu else "full"), "command": command,
                   "date": date, "machine": machine(), "load_start": os.getloadavg(), "config": setting["config"],
                   "setting": {**{k: v for k, v in setting.items() if k != "config"}, "e2e": E2E}}
    try:
        if only & {"steps", "e2e", "predict"}:
            model_dir = make_model_dir(run, work / "model", setting["config"], args.vocab)
        if "peak" in only:
            results["peak"] = run("fp32 matmul peak", WORKER, "peak",
                                  run.job({"sizes": setting["peak_sizes"], "repeat": max(5, setting["repeat"])}))
        if "steps" in only:
            measured = measure_steps(run, setting, model_dir / "bert_config.json")
            again = {(r["name"], r["seq"]) for r in measured}
            order = [i[0] for i in IMPLEMENTATIONS]   # rows of implementations no longer listed are dropped
            kept = [r for r in results.get("steps", []) if (r["name"], r["seq"]) not in again
                    and r["name"] in order] if args.update else []
            results["steps"] = sorted(kept + measured, key=lambda r: (r["seq"], order.index(r["name"])))
        if "e2e" in only:   # with --update, the tasks not run again keep their rows
            measured = measure_e2e(run, setting, model_dir, Path(args.data_dir))
            kept = [r for r in results.get("e2e", []) if r["task"] not in setting["tasks"]] if args.update else []
            results["e2e"] = measured + kept
        if "tokenization" in only:
            results["tokenization"] = measure_tokenization(run, setting, args.data_dir, args.vocab)
        if "tricks" in only:
            if "trick_shape" not in setting:
                raise SystemExit("--only tricks measures BERT-base size: not with --smoke")
            results["tricks"] = measure_tricks(run, setting)
        if "predict" in only:
            results["predict"] = measure_predict(run, setting, model_dir, Path(args.data_dir))
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    timing = {"load_end": os.getloadavg(), "minutes": (time.time() - started) / 60}
    (results["updates"][-1] if args.update else results).update(timing)
    if json_out:
        raw = Path(json_out).resolve()
        results["raw"] = str(raw.relative_to(REPO) if raw.is_relative_to(REPO) else raw)
    results["summary"] = summary(results)
    text = render(results)
    if json_out:
        write_atomic(json_out, json.dumps(results, indent=1) + "\n")
    if out:
        write_report(Path(out), text)
        print(f"wrote {out}")
    else:
        print(text)
    return results


if __name__ == "__main__":
    main()
