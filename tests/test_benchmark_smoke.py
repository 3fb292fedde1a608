"""scripts/benchmark.py end to end on a tiny model (--smoke): every kind of process runs and the report and
raw results hold what the full run reports. The figures of a smoke run mean nothing; speed targets are
proved by the full run (docs/benchmark.md), never here."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bert4keras_oracle import require_bert4keras

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from benchmark import matmul_params, step_flops  # noqa: E402


def test_flop_accounting_by_hand():
    base = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12)
    assert matmul_params(base) == 12 * (4 * 768 * 768 + 2 * 768 * 3072) == 84_934_656
    # seq 128 x batch 8: dense 2 * 84,934,656 * 1024 = 173,946,175,488; attention 4 * 12 * 8 * 128^2 * 768
    forward = 173_946_175_488 + 4_831_838_208
    assert step_flops(base, 8, 128, train=False) == forward
    assert step_flops(base, 8, 128) == 3 * forward == 536_334_041_088


def test_smoke_run(tmp_path, clue_data_dir, vocab_path):
    require_bert4keras()
    out, raw = tmp_path / "benchmark.md", tmp_path / "benchmark.json"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark.py"), "--smoke", "--data-dir",
                           str(clue_data_dir), "--vocab", str(vocab_path), "--out", str(out), "--json", str(raw),
                           "--work", str(tmp_path / "work")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(raw.read_text())

    assert results["peak"]["peak_gflops"] > 0
    steps = {row["name"]: row for row in results["steps"]}
    assert set(steps) == {"ours, TensorFlow", "bert4keras 0.11.5, tf_keras", "ours, TensorFlow, AdaFactor",
                          "bert4keras 0.11.5, tf_keras, AdaFactor"}
    for row in steps.values():
        assert row["train_tokens_per_s"] > 0 and row["infer_tokens_per_s"] > 0 and row["peak_rss_mb"] > 100
        assert 0 < row["train_mfu"] and row["train_vs_bert4keras"] > 0
    assert steps["ours, TensorFlow, AdaFactor"]["optimizer_class"] == "AdaFactor"   # clue.optimizers'
    # each AdaFactor row is compared with bert4keras's AdaFactor row, not its Adam one
    theirs = steps["bert4keras 0.11.5, tf_keras, AdaFactor"]
    assert theirs["train_vs_bert4keras"] == 1.0
    assert steps["ours, TensorFlow, AdaFactor"]["train_vs_bert4keras"] == theirs["train_s"] / \
        steps["ours, TensorFlow, AdaFactor"]["train_s"]

    e2e = {row["pipeline"]: row for row in results["e2e"]}
    assert set(e2e) == {"ours", "bert4keras"} and all(r["wall_s"] > 0 for r in e2e.values())
    work = tmp_path / "work"
    assert (work / "e2e_tnews_ours_0" / "weights" / "tnews.weights.h5").is_file()   # our task script ran
    assert list((work / "e2e_tnews_bert4keras_0").glob("tnews.weights*"))           # and theirs

    assert [r["set"] for r in results["tokenization"]] == ["tnews sentence", "ocnli pair"]
    assert all(r["identical"] and r["n"] == 200 for r in results["tokenization"])

    predicted = results["predict"]
    assert predicted["texts"] == 64 and predicted["same_labels"]   # the API and the model alone agree
    assert all(predicted[way]["texts_per_s"] > 0 for way in ("clue.predict", "model.predict_on_batch", "model.predict"))

    targets = [t["target"] for t in results["summary"]["targets"]]
    assert any(t.startswith("MFU") for t in targets) and any(t.startswith("end to end") for t in targets)
    assert any(t.startswith("AdaFactor train step <= bert4keras's AdaFactor") for t in targets)
    assert any(t.startswith("tokenization") for t in targets)
    text = out.read_text()
    for heading in ("## Targets", "## fp32 matmul peak", "## 1. Train and inference", "## 2. End to end",
                    "## 3. Tokenization", "## 5. Predicting with a trained run"):
        assert heading in text

    # --update re-measures one item into the same results, keeps the others and keeps hand-written text
    out.write_text(text + "\nAnalysis written by hand.\n")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark.py"), "--smoke", "--only", "peak",
                           "--update", "--data-dir", str(clue_data_dir), "--vocab", str(vocab_path), "--out",
                           str(out), "--json", str(raw)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    updated = json.loads(raw.read_text())
    assert [r["train_times"] for r in updated["steps"]] == [r["train_times"] for r in results["steps"]]
    assert [r["wall_all"] for r in updated["e2e"]] == [r["wall_all"] for r in results["e2e"]]
    assert updated["peak"]["matmuls"] != results["peak"]["matmuls"]   # re-measured
    assert [u["items"] for u in updated["updates"]] == [["peak"]]
    assert "re-measured by `python scripts/benchmark.py --smoke --only peak --update" in out.read_text()
    assert out.read_text().endswith("Analysis written by hand.\n")


def test_gpu_smoke_run(tmp_path, clue_data_dir, vocab_path):
    """--gpu (here on the CPU, tiny model): the JAX rows and our tnews run on JAX from a safetensors
    checkpoint; the PyTorch and transformers rows where those are installed (not in CI), else skipped."""
    import importlib.util

    raw, out = tmp_path / "gpu.json", tmp_path / "gpu.md"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark.py"), "--gpu", "--smoke", "--data-dir",
                           str(clue_data_dir), "--vocab", str(vocab_path), "--out", str(out), "--json", str(raw),
                           "--work", str(tmp_path / "work")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(raw.read_text())
    assert "gpu" in results["mode"] and "peak" not in results
    steps = {row["name"]: row for row in results["steps"]}
    assert set(steps) == {"ours, JAX", "ours, JAX, mixed_bfloat16", "ours, PyTorch, AdamW",
                          "ours, PyTorch, AdamW, mixed_bfloat16", "transformers, PyTorch, AdamW"}
    assert steps["ours, JAX"]["train_s"] > 0 and steps["ours, JAX, mixed_bfloat16"]["policy"] == "mixed_bfloat16"
    for name in ("ours, PyTorch, AdamW", "transformers, PyTorch, AdamW"):
        installed = importlib.util.find_spec("torch") and (name.startswith("ours")
                                                           or importlib.util.find_spec("transformers"))
        assert ("skipped" not in steps[name]) == bool(installed), steps[name]
    assert (tmp_path / "work" / "model" / "model.safetensors").is_file()
    e2e = {row["pipeline"]: row for row in results["e2e"]}
    assert set(e2e) == ({"ours, JAX", "ours, PyTorch"} if importlib.util.find_spec("torch") else {"ours, JAX"})
    assert (tmp_path / "work" / "e2e_tnews_ours_JAX_0" / "weights" / "tnews.weights.h5").is_file()
    assert "A `--gpu` run" in out.read_text()
