"""Tokenization speed: clue.tokenizer against bert4keras 0.11.5 on the same CLUE texts, ids checked equal.

    python scripts/benchmark_tokenizer.py [--data-dir DIR] [--vocab VOCAB] [--texts N] [--repeat R]

Texts per set: a deterministic sample of every text field of every shared file ("mix"), and the task
inputs themselves (tnews sentences, afqmc and ocnli pairs, iflytek descriptions, cmrc2018
question/context pairs at maxlen 512). For each set it reports texts/s of bert4keras ``encode`` (in a
subprocess, legacy Keras), ours ``encode`` one text at a time and ours ``encode_batch``, the best of
``--repeat`` runs, after checking that all three give the same ids and segment ids.
``measure(texts, vocab_path)`` is the reusable part (scripts/benchmark.py uses it).
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "scripts"))

from clue.tokenizer import Tokenizer  # noqa: E402

# Runs under bert4keras: argv = vocab, jobs JSON, output JSON, repeats. Times encode() over all items.
ORACLE = r"""
import json, sys, time
from bert4keras.tokenizers import Tokenizer
tok = Tokenizer(sys.argv[1], do_lower_case=True)
job = json.load(open(sys.argv[2], encoding="utf-8"))
items, maxlen = job["items"], job["maxlen"]
best = float("inf")
for _ in range(int(sys.argv[4])):
    start = time.perf_counter()
    out = [tok.encode(a, b, maxlen=maxlen) for a, b in items]
    best = min(best, time.perf_counter() - start)
json.dump({"seconds": best, "encoded": out}, open(sys.argv[3], "w"))
"""


def _best_time(fn, repeat):
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def bert4keras_encode(items, vocab_path, maxlen=None, repeat=3):
    """(seconds of the best run, [[ids, segment_ids], ...]) from bert4keras on (first, second) items."""
    from bert4keras_oracle import run_bert4keras

    with tempfile.TemporaryDirectory() as tmp:
        job, out = Path(tmp) / "job.json", Path(tmp) / "out.json"
        job.write_text(json.dumps({"items": items, "maxlen": maxlen}), encoding="utf-8")
        run_bert4keras(ORACLE, vocab_path, job, out, repeat, timeout=3600)
        result = json.loads(out.read_text(encoding="utf-8"))
    return result["seconds"], result["encoded"]


def measure(texts, vocab_path, seconds=None, maxlen=None, repeat=3):
    """texts/s of bert4keras and ours on ``texts`` (strings, or pairs with ``seconds``); ids checked equal.

    Returns a dict: n, bert4keras, ours (encode one by one), ours_batch (encode_batch), the two ratios,
    and identical (bool). Our tokenizer is built fresh, and its first (cold-cache) run is included in the
    best-of-``repeat`` like the others.
    """
    texts = list(texts)
    seconds = None if seconds is None else list(seconds)
    items = [[a, None if seconds is None else seconds[i]] for i, a in enumerate(texts)]
    theirs_time, theirs = bert4keras_encode(items, vocab_path, maxlen, repeat)
    tokenizer = Tokenizer(vocab_path)
    one_time, ours = _best_time(lambda: [tokenizer.encode(a, b, maxlen=maxlen) for a, b in items], repeat)
    batch_time, ours_batch = _best_time(lambda: tokenizer.encode_batch(texts, seconds, maxlen), repeat)
    theirs = [tuple(x) for x in theirs]
    identical = [tuple(x) for x in ours] == theirs and [tuple(x) for x in ours_batch] == theirs
    n = len(items)
    return {"n": n, "bert4keras": n / theirs_time, "ours": n / one_time, "ours_batch": n / batch_time,
            "ratio": theirs_time / one_time, "ratio_batch": theirs_time / batch_time, "identical": identical}


def benchmark_sets(data_dir, n_texts):
    """{name: (texts, seconds or None, maxlen)} drawn deterministically from the shared CLUE files."""
    from clue.data import load_cmrc2018, load_json_lines
    from tokenizer_parity import collect, sample

    data_dir = Path(data_dir)
    texts, _ = collect(data_dir)
    tnews = load_json_lines(data_dir / "tnews" / "train.json", ("sentence",))[:n_texts]
    afqmc = load_json_lines(data_dir / "afqmc" / "dev.json", ("sentence1", "sentence2"))[:n_texts]
    ocnli = load_json_lines(data_dir / "ocnli" / "train.50k.json", ("sentence1", "sentence2"))[:n_texts]
    iflytek = load_json_lines(data_dir / "iflytek" / "dev.json", ("sentence",))[:n_texts]
    cmrc = load_cmrc2018(data_dir / "cmrc2018" / "cmrc2018_dev.json")[:n_texts]
    return {
        "mix of all fields": ([t for _, t in sample(texts, n_texts)], None, None),
        "tnews sentence": ([r["sentence"] for r in tnews], None, None),
        "afqmc pair": ([r["sentence1"] for r in afqmc], [r["sentence2"] for r in afqmc], 128),
        "ocnli pair": ([r["sentence1"] for r in ocnli], [r["sentence2"] for r in ocnli], 128),
        "iflytek sentence": ([r["sentence"] for r in iflytek], None, None),
        "cmrc2018 q+context": ([r["question"] for r in cmrc], [r["context"] for r in cmrc], 512),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "clue_data"))
    parser.add_argument("--vocab", default=str(REPO.parent / "shared" / "vocab" / "chinese_bert_vocab.txt"))
    parser.add_argument("--texts", type=int, default=20000, help="texts per set (at most)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'set':22s} {'texts':>6s} {'chars/text':>10s} {'bert4keras/s':>12s} {'ours/s':>9s} "
          f"{'batch/s':>9s} {'ratio':>6s} {'batch':>6s}  ids")
    all_identical = True
    for name, (texts, seconds, maxlen) in benchmark_sets(args.data_dir, args.texts).items():
        r = measure(texts, args.vocab, seconds, maxlen, args.repeat)
        chars = sum(map(len, texts)) + sum(map(len, seconds or [])) 
        all_identical &= r["identical"]
        print(f"{name:22s} {r['n']:6d} {chars / r['n']:10.0f} {r['bert4keras']:12.0f} {r['ours']:9.0f} "
              f"{r['ours_batch']:9.0f} {r['ratio']:6.1f} {r['ratio_batch']:6.1f}  "
              f"{'identical' if r['identical'] else 'DIFFERENT'}")
    return 0 if all_identical else 1


if __name__ == "__main__":
    sys.exit(main())
