"""FLOP accounting, target checks and the markdown report of scripts/benchmark.py."""

OURS = "ours, TensorFlow"          # what the task scripts run (TensorFlow is the default backend)
BERT4KERAS = "bert4keras 0.11.5, tf_keras"
# the same two with the baselines' optimizer
OURS_ADAFACTOR, BERT4KERAS_ADAFACTOR = f"{OURS}, AdaFactor", f"{BERT4KERAS}, AdaFactor"
TARGETS = {"e2e": 1.5, "tokenization": 10.0, "mfu": 0.5}


def matmul_params(config):
    """Weights that multiply activations, per token: per layer Q, K, V and the attention output (H x H)
    and the two feed-forward matrices (H x I). Embedding lookups are gathers; the head is negligible."""
    h, i, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    return layers * (4 * h * h + 2 * h * i)


def step_flops(config, batch, seq, train=True):
    """Matmul FLOPs of one step. Forward: 2 * params * tokens for the dense layers, plus attention's two
    batched matmuls (Q K^T and probs V), 2 * 2 * batch * seq^2 * H per layer. A train step is 3x the
    forward: the backward pass multiplies twice as much (gradients of inputs and of weights)."""
    forward = 2 * matmul_params(config) * batch * seq \
        + 4 * config["num_hidden_layers"] * batch * seq * seq * config["hidden_size"]
    return 3 * forward if train else forward


def summary(results):
    """Derived figures (FLOP/s, MFU, ratios) and each target's verdict."""
    out = {"targets": []}
    config = results["config"]
    peak = results.get("peak", {}).get("peak_gflops")
    steps = [r for r in results.get("steps", []) if "skipped" not in r]
    # each row against bert4keras's row of the same shape and optimizer
    bert4keras = {(r["seq"], r.get("optimizer", "adam")): r for r in steps if r["name"].startswith(BERT4KERAS)}
    for row in steps:
        train = step_flops(config, row["batch"], row["seq"]) / row["train_s"] / 1e9
        infer = step_flops(config, row["batch"], row["seq"], train=False) / row["infer_s"] / 1e9
        row.update(train_gflops=train, infer_gflops=infer)
        if peak:
            row.update(train_mfu=train / peak, infer_mfu=infer / peak)
        base = bert4keras.get((row["seq"], row.get("optimizer", "adam")))
        if base:
            row["train_vs_bert4keras"] = base["train_s"] / row["train_s"]
            row["infer_vs_bert4keras"] = base["infer_s"] / row["infer_s"]
    add = out["targets"].append
    ours = [row for row in steps if row["name"] == OURS]
    for row in ours:
        if peak:
            add({"target": f"MFU >= 50% of matmul peak, train step seq {row['seq']} x {row['batch']}",
                 "figure": f"{row['train_mfu']:.0%} ({row['train_gflops']:.0f} of {peak:.0f} GFLOP/s)",
                 "met": row["train_mfu"] >= TARGETS["mfu"]})
    for row in ours:
        base = bert4keras.get((row["seq"], "adam"))
        if base:
            add({"target": f"peak memory <= bert4keras, train seq {row['seq']} x {row['batch']}",
                 "figure": f"{row['peak_rss_mb']:,.0f} vs {base['peak_rss_mb']:,.0f} MB",
                 "met": row["peak_rss_mb"] <= base["peak_rss_mb"]})
    for row in steps:
        base = bert4keras.get((row["seq"], "adafactor"))
        if row["name"] == OURS_ADAFACTOR and base:
            add({"target": f"AdaFactor train step <= bert4keras's AdaFactor, seq {row['seq']} x {row['batch']}",
                 "figure": f"{row['train_s']:.3f} vs {base['train_s']:.3f} s per step "
                           f"({row['train_vs_bert4keras']:.2f}x)",
                 "met": row["train_s"] <= base["train_s"]})
    e2e = results.get("e2e", [])
    for task in dict.fromkeys(r["task"] for r in e2e):
        theirs = next(r for r in e2e if r["task"] == task and r["pipeline"] == "bert4keras")
        for row in e2e:
            if row["task"] == task and row is not theirs:
                row["speedup"] = theirs["wall_s"] / row["wall_s"]
        ours = next(r for r in e2e if r["task"] == task and r["pipeline"] == "ours")
        add({"target": f"end to end >= 1.5x bert4keras, {task}",
             "figure": f"{ours['speedup']:.2f}x ({theirs['wall_s']:.0f} s -> {ours['wall_s']:.0f} s)",
             "met": ours["speedup"] >= TARGETS["e2e"]})
        add({"target": f"peak memory <= bert4keras, end to end {task}",
             "figure": f"{ours['peak_rss_mb']:,.0f} vs {theirs['peak_rss_mb']:,.0f} MB",
             "met": ours["peak_rss_mb"] <= theirs["peak_rss_mb"]})
    tokenization = results.get("tokenization", [])
    if tokenization:
        worst = min(tokenization, key=lambda r: r["ratio_arrays"])
        add({"target": "tokenization >= 10x bert4keras, every set (ours as the task pipeline calls it: "
                       "`encode_batch(arrays=True)`)",
             "figure": f"{worst['ratio_arrays']:.1f}x at worst ({worst['set']}); ids identical: "
                       f"{all(r['identical'] for r in tokenization)}",
             "met": worst["ratio_arrays"] >= TARGETS["tokenization"] and all(r["identical"] for r in tokenization)})
    return out


def fmt(x, spec=",.0f"):
    return "-" if x is None else format(x, spec)


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render(results):
    m = results["machine"]
    config = results["config"]
    updates = "".join(f" Items {', '.join(u['items'])} re-measured by `{u['command']}` ({u['date']}, "
                      f"{u.get('minutes', 0):.0f} min, load average at start "
                      f"{'/'.join(f'{x:.2f}' for x in u['load_start'])})." for u in results.get("updates", []))
    parts = [
        f"Generated by `{results['command']}` ({results['mode']} run, {results['date']}, "
        f"{results['minutes']:.0f} min). Raw numbers: `{results.get('raw', 'docs/benchmark.json')}`.{updates}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM, no GPU; {m['os']}, "
        f"Python {m['python']}. " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".",
        f"Load average (1/5/15 min) at start {'/'.join(f'{x:.2f}' for x in results['load_start'])}, "
        f"at end {'/'.join(f'{x:.2f}' for x in results['load_end'])}.",
        "",
        f"Model: BERT, hidden {config['hidden_size']}, {config['num_hidden_layers']} layers, "
        f"{config['num_attention_heads']} heads, intermediate {config['intermediate_size']}, vocab "
        f"{config['vocab_size']}, dropout {config['hidden_dropout_prob']}, fp32. Medians of "
        f"{results['setting']['repeat']} repetitions.",
        "",
        "## Targets",
        "",
        table(["target", "measured", "met"],
              [[t["target"], t["figure"], "yes" if t["met"] else "**no**"] for t in results["summary"]["targets"]]),
    ]
    if "peak" in results:
        peak = results["peak"]
        parts += ["", "## fp32 matmul peak of this machine", "",
                  f"Best median rate of an (m x k) @ (k x n) fp32 matmul: **{peak['peak_gflops']:.0f} GFLOP/s**, "
                  "the reference of the FLOP utilisation below.", "",
                  table(["engine", "m x k x n", "GFLOP/s"],
                        [[r["engine"], f"{r['m']} x {r['k']} x {r['n']}", fmt(r["gflops"])] for r in peak["matmuls"]])]
    if "steps" in results:
        rows = []
        for r in results["steps"]:
            shape = f"{r['seq']} x {r['batch']}"
            if "skipped" in r:
                rows.append([r["name"], shape] + ["-"] * 7 + [r["skipped"]])
                continue
            rows.append([r["name"], shape, fmt(r["train_tokens_per_s"]), f"{r['train_s']:.3f}",
                         fmt(r.get("train_vs_bert4keras"), ".2f") + "x", fmt(r.get("train_mfu"), ".0%"),
                         fmt(r["infer_tokens_per_s"]), fmt(r.get("infer_mfu"), ".0%"), fmt(r["peak_rss_mb"]),
                         f"first step {r['first_step_s']:.0f} s"])
        parts += ["", "## 1. Train and inference steps (random full-length batches)", "",
                  "Train step: forward, backward and an Adam update of the classifier ([CLS] -> Dense), the same "
                  "optimizer algorithm everywhere (keras / tf_keras / torch Adam); in the AdaFactor rows the "
                  "baselines' optimizer instead (ours: clue.optimizers.AdaFactor, what the task scripts train "
                  "with; bert4keras: its own AdaFactor, patched to run on tf_keras), each compared with "
                  "bert4keras's row of the same optimizer. Inference: forward only. "
                  "tokens/s = batch x seq / median step time. MFU = analytic matmul FLOPs per step / time / "
                  "matmul peak.", "",
                  table(["implementation", "seq x batch", "train tokens/s", "train s/step", "vs bert4keras",
                         "train MFU", "infer tokens/s", "infer MFU", "peak RSS MB", "note"], rows)]
        h, i, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
        parts += ["", "FLOP accounting (matmuls only; embeddings are gathers): per token the dense layers "
                  f"multiply by P = L (4 H^2 + 2 H I) = {layers} x (4 x {h}^2 + 2 x {h} x {i}) = "
                  f"{matmul_params(config):,} weights; forward FLOPs = 2 P B T + 4 L B T^2 H (attention scores "
                  "and weighted sum), train = 3 x forward. Seq 128 x 8: "
                  f"{step_flops(config, 8, 128) / 1e9:.0f} GFLOP per train step; seq 512 x 2: "
                  f"{step_flops(config, 2, 512) / 1e9:.0f} GFLOP."]
    if "profile" in results:
        parts += ["", "## Profile of our train step", "",
                  "TensorFlow profiler, AdaFactor step (clue.optimizers.AdaFactor, the task scripts' default), "
                  "median of the repetitions. "
                  "Op time is summed over the threads that ran the ops, so it exceeds the wall time of the step "
                  "when ops overlap on the two cores."]
        for p in results["profile"]:
            total = p["op_total_s"]
            matmul = sum(v for k, v in p["op_seconds"].items() if k.endswith("matmul"))
            flops = step_flops(config, p["batch"], p["seq"])
            parts += ["", f"Seq {p['seq']} x batch {p['batch']}: step {p['step_s']:.2f} s wall, ops {total:.2f} s; "
                      f"matmuls {matmul / total:.0%} of op time ({flops / matmul / 1e9:.0f} GFLOP per op-second), "
                      "the rest below. Largest op types: "
                      + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in list(p["op_types"].items())[:8]) + ".", "",
                      table(["part of the step", "op time ms", "share"],
                            [[k, f"{v * 1000:.0f}", f"{v / total:.0%}"] for k, v in p["op_seconds"].items()])]
    if "e2e" in results:
        hyper = results["setting"]["e2e"]
        lr = f"{hyper['lr']:.0e}".replace("e-0", "e-")   # 5e-4, as the flag is written
        rows = [[r["task"], r["pipeline"], r["steps"], f"{r['wall_s']:.1f}",
                 ", ".join(f"{x:.1f}" for x in r["wall_all"]), f"{r['cpu_s']:.0f}",
                 fmt(r.get("speedup", 1.0), ".2f") + "x", fmt(r["peak_rss_mb"])] for r in results["e2e"]]
        parts += ["", "## 2. End to end on real CLUE text", "",
                  f"{hyper['epochs']} epoch{'s' if hyper['epochs'] > 1 else ''} on the first "
                  f"{results['setting']['limit']} train examples (batch {hyper['batch_size']}, maxlen "
                  f"{hyper['maxlen']}, AdaFactor lr {lr}: ours clue.optimizers.AdaFactor, bert4keras its own), "
                  "dev accuracy "
                  "after each epoch with the best weights saved, then (ocnli) the test file predicted and "
                  "written; the first "
                  f"{results['setting']['limit']} dev and test examples. Wall time of the whole process, "
                  "Python start to exit, as a user runs it: ours is `python tasks/<task>.py --model bert-base "
                  "--model-dir <dir> --limit N` with these flags, bert4keras is scripts/bench_bert4keras.py (a "
                  "re-creation of the CLUE-bert4keras scripts, see its docstring). Both load the same random "
                  "Google-format BERT checkpoint.", "",
                  table(["task", "pipeline", "train steps", "median s", "all runs s", "CPU s", "speed-up",
                         "peak RSS MB"], rows)]
    if "tokenization" in results:
        rows = [[r["set"], r["n"], fmt(r["bert4keras"]), fmt(r["ours"]), fmt(r["ours_batch"]), fmt(r["ours_arrays"]),
                 f"{r['ratio']:.1f}x", f"{r['ratio_batch']:.1f}x", f"**{r['ratio_arrays']:.1f}x**",
                 "yes" if r["identical"] else "**NO**"] for r in results["tokenization"]]
        parts += ["", "## 3. Tokenization", "",
                  "texts/s in CPU time, best of the repetitions (scripts/benchmark_tokenizer.py): bert4keras "
                  "`encode`; ours `encode` one text at a time, `encode_batch` (lists, like `encode`) and "
                  "`encode_batch(arrays=True)` (int32 views into one buffer: what the task pipeline calls, "
                  "and the target's figure); all four compared id for id.", "",
                  table(["texts", "n", "bert4keras/s", "ours/s", "ours batch/s", "ours arrays/s", "ratio",
                         "batch ratio", "arrays ratio", "identical ids"], rows)]
    return "\n".join(parts) + "\n"
