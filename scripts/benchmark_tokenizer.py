"""Tokenization speed: clue.tokenizer against bert4keras 0.11.5 on the same CLUE texts, ids checked equal.

    python scripts/benchmark_tokenizer.py [--data-dir DIR] [--vocab VOCAB] [--texts N] [--rounds R]

Texts per set: a deterministic sample of every text field of every shared file ("mix"), and the task
inputs themselves (tnews sentences, afqmc and ocnli pairs, iflytek descriptions, cmrc2018
question/context pairs at maxlen 512). For each set it reports texts/s of bert4keras ``encode``, ours
``encode`` one text at a time, ours ``encode_batch`` (lists, as ``encode``) and ours
``encode_batch(arrays=True)`` (numpy views: what the task pipeline uses), the best of ``--rounds``
rounds, after checking that all four give the same ids and segment ids. Both run in one subprocess (bert4keras needs legacy
Keras), alternately, timed in CPU time of the process (``time.process_time``), so that other jobs on a
shared machine skew neither side, with the garbage collector off while timing (as ``timeit`` does: with
TensorFlow loaded, one full collection costs more than the tokenization being timed); each round builds
the tokenizers afresh (untimed), so our word caches start empty every round.
``measure(texts, vocab_path)`` is the reusable part (scripts/benchmark.py uses it).
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "scripts"))

# Runs under bert4keras: argv = vocab, job JSON, output JSON, rounds. Both tokenizers run in this one
# process, alternately, so that load from other jobs hits both alike; each round builds them afresh (their
# construction is not timed), so ours starts every round with empty word caches.
SCRIPT = r"""
import gc, json, sys, time
from bert4keras.tokenizers import Tokenizer as Theirs
from clue.tokenizer import Tokenizer as Ours

vocab, rounds = sys.argv[1], int(sys.argv[4])
job = json.load(open(sys.argv[2], encoding="utf-8"))
items, maxlen = job["items"], job["maxlen"]
firsts = [a for a, _ in items]
seconds = None if all(b is None for _, b in items) else [b for _, b in items]


def timed(fn):
    gc.collect()
    gc.disable()  # as timeit does: a collection of whatever else lives in the process is not the tokenizer
    try:
        start = time.process_time()
        out = fn()
        return time.process_time() - start, out
    finally:
        gc.enable()


best = dict.fromkeys(("bert4keras", "ours", "ours_batch", "ours_arrays"), float("inf"))
for _ in range(rounds):
    theirs = Theirs(vocab, do_lower_case=True)
    t, expected = timed(lambda: [theirs.encode(a, b, maxlen=maxlen) for a, b in items])
    best["bert4keras"] = min(best["bert4keras"], t)
    ours = Ours(vocab)
    t, one = timed(lambda: [ours.encode(a, b, maxlen=maxlen) for a, b in items])
    best["ours"] = min(best["ours"], t)
    ours = Ours(vocab)
    t, batch = timed(lambda: ours.encode_batch(firsts, seconds, maxlen))
    best["ours_batch"] = min(best["ours_batch"], t)
    ours = Ours(vocab)
    t, arrays = timed(lambda: ours.encode_batch(firsts, seconds, maxlen, arrays=True))
    best["ours_arrays"] = min(best["ours_arrays"], t)
    expected = [tuple(x) for x in expected]
    identical = ([tuple(x) for x in one] == expected and [tuple(x) for x in batch] == expected
                 and [(a.tolist(), b.tolist()) for a, b in arrays] == expected)
json.dump({"seconds": best, "identical": identical}, open(sys.argv[3], "w"))
"""


def measure(texts, vocab_path, seconds=None, maxlen=None, rounds=3):
    """texts/s of bert4keras ``encode`` and ours (``encode`` one by one, and ``encode_batch``) on ``texts``
    (strings; pairs with ``seconds``), CPU time, best of ``rounds``; the ids checked identical.

    Returns a dict: n, bert4keras, ours, ours_batch, ours_arrays (texts/s), ratio, ratio_batch,
    ratio_arrays, identical (bool).
    """
    from bert4keras_oracle import run_bert4keras

    texts = list(texts)
    items = [[a, None if seconds is None else b] for a, b in zip(texts, seconds or texts)]
    with tempfile.TemporaryDirectory() as tmp:
        job, out = Path(tmp) / "job.json", Path(tmp) / "out.json"
        job.write_text(json.dumps({"items": items, "maxlen": maxlen}), encoding="utf-8")
        run_bert4keras(SCRIPT, vocab_path, job, out, rounds, timeout=3600)
        result = json.loads(out.read_text(encoding="utf-8"))
    n, t = len(items), result["seconds"]
    return {"n": n, "bert4keras": n / t["bert4keras"], "ours": n / t["ours"], "ours_batch": n / t["ours_batch"],
            "ours_arrays": n / t["ours_arrays"], "ratio": t["bert4keras"] / t["ours"],
            "ratio_batch": t["bert4keras"] / t["ours_batch"], "ratio_arrays": t["bert4keras"] / t["ours_arrays"],
            "identical": result["identical"]}


def benchmark_sets(data_dir, n_texts, names=None):
    """{name: (texts, seconds or None, maxlen)} drawn deterministically from the shared CLUE files; only
    the sets in ``names`` when given (each set reads only its own files)."""
    from clue.data import load_cmrc2018, load_json_lines
    from tokenizer_parity import collect, sample

    data_dir = Path(data_dir)

    def texts(path, *fields, maxlen=None):
        rows = load_json_lines(data_dir / path, fields)[:n_texts]
        columns = [[r[field] for r in rows] for field in fields]
        return columns[0], columns[1] if len(fields) == 2 else None, maxlen

    def mix():
        return [t for _, t in sample(collect(data_dir)[0], n_texts)], None, None

    def cmrc():
        rows = load_cmrc2018(data_dir / "cmrc2018" / "cmrc2018_dev.json")[:n_texts]
        return [r["question"] for r in rows], [r["context"] for r in rows], 512

    makers = {
        "mix of all fields": mix,
        "tnews sentence": lambda: texts("tnews/train.json", "sentence"),
        "afqmc pair": lambda: texts("afqmc/dev.json", "sentence1", "sentence2", maxlen=128),
        "ocnli pair": lambda: texts("ocnli/train.50k.json", "sentence1", "sentence2", maxlen=128),
        "iflytek sentence": lambda: texts("iflytek/dev.json", "sentence"),
        "cmrc2018 q+context": cmrc,
    }
    return {name: make() for name, make in makers.items() if names is None or name in names}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "clue_data"))
    parser.add_argument("--vocab", default=str(REPO.parent / "shared" / "vocab" / "chinese_bert_vocab.txt"))
    parser.add_argument("--texts", type=int, default=20000, help="texts per set (at most)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{'set':22s} {'texts':>6s} {'chars/text':>10s} {'bert4keras/s':>12s} {'ours/s':>9s} "
          f"{'batch/s':>9s} {'arrays/s':>9s} {'ratio':>6s} {'batch':>6s} {'arrays':>6s}  ids")
    all_identical = True
    for name, (texts, seconds, maxlen) in benchmark_sets(args.data_dir, args.texts).items():
        r = measure(texts, args.vocab, seconds, maxlen, args.rounds)
        chars = sum(map(len, texts)) + sum(map(len, seconds or [])) 
        all_identical &= r["identical"]
        print(f"{name:22s} {r['n']:6d} {chars / r['n']:10.0f} {r['bert4keras']:12.0f} {r['ours']:9.0f} "
              f"{r['ours_batch']:9.0f} {r['ours_arrays']:9.0f} {r['ratio']:6.1f} {r['ratio_batch']:6.1f} "
              f"{r['ratio_arrays']:6.1f}  "
              f"{'identical' if r['identical'] else 'DIFFERENT'}")
    return 0 if all_identical else 1


if __name__ == "__main__":
    sys.exit(main())
