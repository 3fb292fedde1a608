"""Benchmark our CLUE pipeline against bert4keras 0.11.5 and Hugging Face transformers, on this machine.

    python scripts/benchmark.py            # full run at BERT-base size (44 minutes on 2 cores)
    python scripts/benchmark.py --smoke    # tiny model, few steps: under a minute (what CI runs)
    python scripts/benchmark.py --only tokenization --update   # re-measure one item into the report

Measures, one run on one machine, medians of ``--repeat`` (>= 3) repetitions:
1. train-step and inference throughput (tokens/s), seq 128 batch 8 and seq 512 batch 2: ours on the
   TensorFlow (with and without XLA), JAX and PyTorch backends; bert4keras on tf_keras; transformers'
   BertForSequenceClassification on PyTorch when installed; all with Adam, and ours and bert4keras's on
   TensorFlow again with the baselines' AdaFactor (ours: clue.optimizers.AdaFactor);
2. end to end: ``tasks/tnews.py`` and ``tasks/ocnli.py`` (one epoch on the first ``--limit`` train
   examples, then dev scoring and test prediction) against a re-creation of the CLUE-bert4keras scripts
   (scripts/bench_bert4keras.py), both loading the same random Google-format checkpoint;
3. tokenization texts/s, ours against bert4keras, ids checked identical (scripts/benchmark_tokenizer.py);
4. the peak resident memory of every process above;
5. model FLOP utilisation: analytic matmul FLOPs of our train step per second against the fp32 matmul
   peak measured here.
Every model run is its own process (the Keras backend is fixed at import; memory is per process). Results
go to ``--out`` (docs/benchmark.md) and, raw, to ``--json``.
"""

import argparse
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
PYTHON = sys.executable
sys.path.insert(0, str(REPO / "scripts"))

from bench_report import BERT4KERAS, BERT4KERAS_ADAFACTOR, OURS_ADAFACTOR, render, summary  # noqa: E402
from clue.submission import write_atomic  # noqa: E402

LEGACY = {"TF_USE_LEGACY_KERAS": "1", "TF_KERAS": "1"}   # bert4keras runs on tf_keras

BASE = dict(vocab_size=21128, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
            intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1,
            attention_probs_dropout_prob=0.1, max_position_embeddings=512, type_vocab_size=2,
            initializer_range=0.02)   # Google's chinese_L-12_H-768_A-12
TINY = dict(BASE, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)

# (name, runner, options): who is measured in item 1; "legacy" runs bert4keras under tf_keras.
IMPLEMENTATIONS = [
    ("ours, TensorFlow + XLA", "step", {"KERAS_BACKEND": "tensorflow"}, {"jit": True}),
    ("ours, TensorFlow", "step", {"KERAS_BACKEND": "tensorflow"}, {"jit": False}),
    ("ours, TensorFlow, mixed_bfloat16", "step", {"KERAS_BACKEND": "tensorflow"},
     {"jit": False, "policy": "mixed_bfloat16"}),
    ("ours, JAX", "step", {"KERAS_BACKEND": "jax"}, {"jit": True}),
    ("ours, PyTorch", "step", {"KERAS_BACKEND": "torch"}, {"jit": False}),
    ("bert4keras 0.11.5, tf_keras", "legacy", {}, {}),
    ("transformers, PyTorch", "hf", {}, {}),
    (OURS_ADAFACTOR, "step", {"KERAS_BACKEND": "tensorflow"}, {"jit": False, "optimizer": "adafactor"}),
    (BERT4KERAS_ADAFACTOR, "legacy", {}, {"optimizer": "adafactor"}),
]

# End to end, both pipelines: the task scripts' defaults for tnews/ocnli (the baselines'), given explicitly
E2E = dict(batch_size=32, maxlen=128, lr=5e-4, epochs=1)

SETTINGS = {
    "full": dict(config=BASE, shapes=[(128, 8), (512, 2)], implementations=[i[0] for i in IMPLEMENTATIONS],
                 tasks=("tnews", "ocnli"), limit=1280, repeat=3, e2e_repeat=3, keep_outputs=False, texts=20000,
                 token_sets=None, profile_shapes=[(128, 8), (25, 32)],
                 peak_sizes=[(1024, 768, 3072), (1024, 3072, 768), (2048, 2048, 2048), (3072, 3072, 3072)]),
    # CI: every kind of process once, on a 2-layer width-64 model; the figures mean nothing
    "smoke": dict(config=TINY, shapes=[(32, 4)],
                  implementations=["ours, TensorFlow", BERT4KERAS, OURS_ADAFACTOR, BERT4KERAS_ADAFACTOR],
                  tasks=("tnews",), limit=64, repeat=3, e2e_repeat=1, keep_outputs=True, texts=200,
                  token_sets=("tnews sentence", "ocnli pair"), profile_shapes=[(32, 4)],
                  peak_sizes=[(256, 256, 256)]),
}


# ---------------------------------------------------------------------------------------------------------
# Processes


def run_process(args, env=None, timeout=3600, log=None):
    """Run ``args``; returns (wall seconds, CPU seconds, peak resident MB of the process, exit code).
    Output goes to ``log`` (a path) so a crash can be read; CPU time and peak RSS are the process's own
    (``wait4`` rusage)."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONHASHSEED="0", CUDA_VISIBLE_DEVICES="",
                       **(env or {}))
    with open(log or os.devnull, "w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(args, env=environment, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > timeout:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode


class Runner:
    """Runs worker processes, keeping their logs in ``work`` and failing loudly with the log's tail."""

    def __init__(self, work, verbose=True):
        self.work, self.verbose, self.count = Path(work), verbose, 0

    def __call__(self, name, args, env=None, result=True, timeout=3600):
        self.count += 1
        tag = f"{self.count:02d}"
        log = self.work / f"{tag}.log"
        out = self.work / f"{tag}.result.json"
        args = [PYTHON, *map(str, args)] + ([str(out)] if result else [])
        if self.verbose:
            print(f"[{time.strftime('%H:%M:%S')}] {name} ...", end=" ", flush=True)
        seconds, cpu, rss, code = run_process(args, env, timeout, log)
        if code != 0:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} failed (exit {code}), log {log}:\n{tail}")
        data = json.loads(out.read_text()) if result else {}
        if self.verbose:
            print(f"{seconds:.1f} s (CPU {cpu:.1f} s), {rss:.0f} MB", flush=True)
        return {**data, "wall_s": seconds, "cpu_s": cpu, "peak_rss_mb": rss}

    def job(self, job):
        self.count += 1
        path = self.work / f"{self.count:02d}.job.json"
        path.write_text(json.dumps(job))
        return path


def installed(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


# ---------------------------------------------------------------------------------------------------------
# The measurements


def make_model_dir(run, folder, config, vocab_path):
    """bert_config.json, vocab.txt (a link to the real vocabulary) and a random Google-format checkpoint
    written from our encoder, loaded by both pipelines of item 2."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bert_config.json").write_text(json.dumps(config, indent=1))
    (folder / "vocab.txt").unlink(missing_ok=True)
    (folder / "vocab.txt").symlink_to(Path(vocab_path).resolve())
    job = run.job({"config": config, "prefix": str(folder / "bert_model.ckpt")})
    run("random BERT checkpoint", [REPO / "scripts" / "bench_worker.py", "checkpoint", job])
    return folder


def measure_peak(run, setting):
    job = run.job({"sizes": setting["peak_sizes"], "repeat": max(5, setting["repeat"])})
    return run("fp32 matmul peak", [REPO / "scripts" / "bench_worker.py", "peak", job])


def measure_steps(run, setting, config_path, skip=()):
    """Item 1: every implementation at every (seq, batch)."""
    results = []
    for seq, batch in setting["shapes"]:
        for name, runner, env, options in IMPLEMENTATIONS:
            if name not in setting["implementations"]:
                continue
            row = {"name": name, "seq": seq, "batch": batch, "optimizer": options.get("optimizer", "adam")}
            needs = {"hf": ["torch", "transformers"], "legacy": ["bert4keras", "tf_keras"],
                     "step": [env.get("KERAS_BACKEND", "tensorflow")]}[runner]   # backend = its module
            missing = [m for m in needs if not installed(m)]
            if missing or name in skip:
                results.append({**row, "skipped": f"{', '.join(missing)} not installed" if missing else "skipped"})
                continue
            job = run.job({"config": setting["config"], "config_path": str(config_path), "seq": seq,
                           "batch": batch, "classes": 2, "repeat": setting["repeat"], **options})
            if runner == "legacy":
                args, env = [REPO / "scripts" / "bench_bert4keras.py", "step", job], LEGACY
            else:
                args = [REPO / "scripts" / "bench_worker.py", runner, job]
            results.append({**row, **run(f"{name}, seq {seq} x batch {batch}", args, env)})
    return results


def measure_profile(run, setting):
    """Where the time of our train step goes, at each profiled (seq, batch)."""
    rows = []
    for seq, batch in setting["profile_shapes"]:
        job = run.job({"config": setting["config"], "seq": seq, "batch": batch, "classes": 15,
                       "repeat": setting["repeat"]})
        rows.append({"seq": seq, "batch": batch, **run(f"profile of our train step, seq {seq} x batch {batch}",
                                                        [REPO / "scripts" / "bench_worker.py", "profile", job])})
    return rows


def e2e_ours(run, task, model_dir, data_dir, limit, out):
    args = [REPO / "tasks" / f"{task}.py", "--data-dir", data_dir, "--model", "bert-base",
            "--model-dir", model_dir, "--optimizer", "adafactor", "--limit", limit, "--output-dir", out,
            "--verbose", 0, "--seed", 0]
    for flag, value in E2E.items():
        args += [f"--{flag.replace('_', '-')}", value]
    return run(f"e2e {task}, ours", args, {"KERAS_BACKEND": "tensorflow"}, result=False)


def e2e_bert4keras(run, task, model_dir, data_dir, limit, out):
    job = run.job({"task": task, "data_dir": str(data_dir), "output_dir": str(out),
                   "vocab_path": str(model_dir / "vocab.txt"), "config_path": str(model_dir / "bert_config.json"),
                   "checkpoint_path": str(model_dir / "bert_model.ckpt"), "limit": limit, **E2E})
    return run(f"e2e {task}, bert4keras", [REPO / "scripts" / "bench_bert4keras.py", "e2e", job], LEGACY,
               result=False)


def measure_e2e(run, setting, model_dir, data_dir):
    """Item 2: each pipeline ``e2e_repeat`` times per task, alternating so drifts in load hit both alike."""
    results = []
    for task in setting["tasks"]:
        pipelines = {"bert4keras": e2e_bert4keras, "ours": e2e_ours}
        runs = {name: [] for name in pipelines}
        for r in range(setting["e2e_repeat"]):
            for name, fn in pipelines.items():
                out = run.work / f"e2e_{task}_{name.replace(', ', '_')}_{r}"
                shutil.rmtree(out, ignore_errors=True)
                runs[name].append(fn(run, task, model_dir, data_dir, setting["limit"], out))
                if not setting["keep_outputs"]:   # BERT-base weights and backups: 1.3 GB a run
                    shutil.rmtree(out, ignore_errors=True)
        for name, rows in runs.items():
            results.append({"task": task, "pipeline": name, "limit": setting["limit"],
                            "steps": -(-setting["limit"] // E2E["batch_size"]),
                            "wall_s": statistics.median(r["wall_s"] for r in rows),
                            "wall_all": [r["wall_s"] for r in rows],
                            "cpu_s": statistics.median(r["cpu_s"] for r in rows),
                            "peak_rss_mb": max(r["peak_rss_mb"] for r in rows)})
    return results


def measure_tokenization(setting, data_dir, vocab_path):
    """Item 3, through scripts/benchmark_tokenizer.py (bert4keras runs in its own process there)."""
    from benchmark_tokenizer import benchmark_sets, measure

    sets = benchmark_sets(data_dir, setting["texts"], setting["token_sets"])
    rows = []
    for name, (texts, seconds, maxlen) in sets.items():
        print(f"[{time.strftime('%H:%M:%S')}] tokenization, {name} ...", flush=True)
        rows.append({"set": name, **measure(texts, vocab_path, seconds, maxlen, setting["repeat"])})
    return rows


# ---------------------------------------------------------------------------------------------------------
# Report


def machine():
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 ** 2
    except OSError:
        memory = float("nan")
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for module in ("tensorflow", "keras", "tf_keras", "jax", "torch", "transformers", "bert4keras", "numpy"):
        try:
            versions[module] = version(module if module != "tf_keras" else "tf-keras")
        except PackageNotFoundError:
            versions[module] = "not installed"
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(memory, 1), "python": platform.python_version(),
            "os": platform.platform(), "versions": versions}


START, END = "<!-- generated by scripts/benchmark.py: start -->", "<!-- generated by scripts/benchmark.py: end -->"


def write_report(path, text):
    """Put ``text`` between the START and END markers of ``path``, keeping what is written around them
    (the analysis); a new file gets the generated part alone. Written atomically."""
    block = f"{START}\n{text}{END}\n"
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    if START in old and END in old:
        after = old[old.index(END) + len(END):].lstrip("\n")
        block = old[:old.index(START)] + block + ("\n" + after if after else "")
    else:
        block = "# Benchmark: ours vs bert4keras vs transformers\n\n" + block
    write_atomic(path, block)


ITEMS = ("peak", "steps", "profile", "e2e", "tokenization")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny model and sizes: under a minute, for CI")
    parser.add_argument("--data-dir", default=os.environ.get("CLUE_DATA_DIR", str(SHARED / "clue_data")))
    parser.add_argument("--vocab", default=str(SHARED / "vocab" / "chinese_bert_vocab.txt"))
    parser.add_argument("--repeat", type=int, help="repetitions per measurement (at least 3)")
    parser.add_argument("--limit", type=int, help=f"end to end: train/dev/test examples (steps = limit / {E2E['batch_size']})")
    parser.add_argument("--only", nargs="+", choices=ITEMS, help="run only these items")
    parser.add_argument("--update", action="store_true",
                        help="merge the items run into the existing --json results and re-render --out from them "
                             "(the other items keep their figures; the report says which items ran when)")
    parser.add_argument("--tasks", nargs="+", choices=("tnews", "ocnli"), help="end-to-end tasks (default both)")
    parser.add_argument("--skip", nargs="*", default=[],
                        help="item-1 implementations to leave out (by name; --update keeps their earlier figures)")
    parser.add_argument("--out", help="markdown report (default docs/benchmark.md; none with --smoke)")
    parser.add_argument("--json", help="raw results (default docs/benchmark.json; none with --smoke)")
    parser.add_argument("--work", help="folder for checkpoints, logs and outputs (default: a temporary one)")
    args = parser.parse_args(argv)
    setting = dict(SETTINGS["smoke" if args.smoke else "full"])
    if args.repeat:
        if args.repeat < 3:
            parser.error("--repeat must be at least 3 (the report gives medians)")
        setting["repeat"] = setting["e2e_repeat"] = args.repeat
    if args.limit:
        setting["limit"] = args.limit
    out = args.out or (None if args.smoke else str(REPO / "docs" / "benchmark.md"))
    json_out = args.json or (None if args.smoke else str(REPO / "docs" / "benchmark.json"))
    if args.tasks:
        setting["tasks"] = tuple(args.tasks)
    only = set(args.only or ITEMS)
    if args.update and not (json_out and Path(json_out).is_file()):
        parser.error(f"--update merges into the results of an earlier run, but {json_out} does not exist")

    work = Path(args.work or tempfile.mkdtemp(prefix="clue-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    run = Runner(work)
    started = time.time()
    command = " ".join(["python scripts/benchmark.py", *(argv if argv is not None else sys.argv[1:])])
    date = time.strftime("%Y-%m-%d %H:%M %Z")
    if args.update:
        results = json.loads(Path(json_out).read_text(encoding="utf-8"))
        results.setdefault("updates", []).append({"command": command, "date": date, "items": sorted(only),
                                                  "load_start": os.getloadavg()})
    else:
        results = {"mode": "smoke" if args.smoke else "full", "command": command, "date": date,
                   "machine": machine(), "load_start": os.getloadavg(), "config": setting["config"],
                   "setting": {**{k: v for k, v in setting.items() if k != "config"}, "e2e": E2E}}
    try:
        if only & {"steps", "e2e"}:
            model_dir = make_model_dir(run, work / "model", setting["config"], args.vocab)
        if "peak" in only:
            results["peak"] = measure_peak(run, setting)
        if "steps" in only:
            steps = measure_steps(run, setting, model_dir / "bert_config.json", args.skip)
            if args.update:   # implementations left out with --skip keep their earlier figures
                earlier = {(r["name"], r["seq"]): r for r in results.get("steps", [])}
                steps = [earlier.get((r["name"], r["seq"]), r) if r.get("skipped") == "skipped" else r
                         for r in steps]
            results["steps"] = steps
        if "profile" in only:
            results["profile"] = measure_profile(run, setting)
        if "e2e" in only:
            results["e2e"] = measure_e2e(run, setting, model_dir, Path(args.data_dir))
        if "tokenization" in only:
            results["tokenization"] = measure_tokenization(setting, args.data_dir, args.vocab)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    if args.update:
        results["updates"][-1].update(load_end=os.getloadavg(), minutes=(time.time() - started) / 60)
    else:
        results["load_end"] = os.getloadavg()
        results["minutes"] = (time.time() - started) / 60
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
