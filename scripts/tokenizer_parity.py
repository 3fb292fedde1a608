"""Check clue.tokenizer against bert4keras 0.11.5 on every text field of every shared CLUE file.

For each text: encode() ids and segment ids, tokenize() tokens and the rematch() character mapping; for
each natural pair of a file (sentence pairs, question/context, keywords/abstract ...): encode(a, b,
maxlen=128). bert4keras runs in a subprocess (it needs legacy Keras). Prints counts and any mismatch.

    python scripts/tokenizer_parity.py [--data-dir ../shared/clue_data] [--vocab VOCAB] [--sample N]
"""

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from clue.data import iter_json_lines, read_text  # noqa: E402
from clue.tokenizer import Tokenizer  # noqa: E402

PAIR_MAXLEN = 128
# Label codes and ids rather than text (label_desc / label_des are text and are kept).
METADATA = {"id", "idx", "label0", "label1", "label2", "label3", "label4", "genre", "level", "prem_id"}

# Runs under bert4keras: argv = vocab, jobs JSON, output JSON-lines file.
ORACLE = r"""
import json, sys
sys.path.insert(0, sys.argv[4])
from bert4keras.tokenizers import Tokenizer
from tokenizer_parity import outputs
jobs = json.load(open(sys.argv[2], encoding="utf-8"))
tok = Tokenizer(sys.argv[1], do_lower_case=jobs["lower"])
with open(sys.argv[3], "w", encoding="utf-8") as out:
    for text in jobs["texts"]:
        out.write(json.dumps(outputs(tok, text)) + "\n")
    for a, b, maxlen in jobs["pairs"]:
        out.write(json.dumps(tok.encode(a, b, maxlen=maxlen)) + "\n")
"""


def outputs(tokenizer, text):
    """[ids, segment ids, tokens, rematch mapping (None if it raises)]: the same calls for both tokenizers."""
    ids, segs = tokenizer.encode(text)
    tokens = tokenizer.tokenize(text)
    try:
        mapping = tokenizer.rematch(text, tokens)
    except ValueError:
        mapping = None
    return [ids, segs, tokens, mapping]


def collect(data_dir):
    """(texts, pairs): texts as (source, text), pairs as (source, a, b, 128); source is "file field"."""
    data_dir = Path(data_dir)
    texts, pairs = [], []

    def add(path, field, text):
        texts.append((f"{path.relative_to(data_dir)} {field}", text))

    def add_pair(path, name, a, b):
        pairs.append((f"{path.relative_to(data_dir)} {name}", a, b, PAIR_MAXLEN))

    pair_fields = {"afqmc": ("sentence1", "sentence2"), "ocnli": ("sentence1", "sentence2"),
                   "tnews": ("sentence", "keywords"), "csl": ("keyword", "abst")}
    for path in sorted(data_dir.glob("*/*.json")):
        task = path.parent.name
        if path.name == "cluener_predict.json":  # a format example holding no text
            continue
        if task in ("afqmc", "ocnli", "tnews", "iflytek", "csl", "cluewsc2020", "cluener"):
            rows = [record for _, record in iter_json_lines(path)]
            for record in rows:
                for field, text in _json_line_texts_of(record):
                    add(path, field, text)
                if task in pair_fields and all(f in record for f in pair_fields[task]):
                    a, b = (_as_text(record[f]) for f in pair_fields[task])
                    add_pair(path, "+".join(pair_fields[task]), a, b)
        elif task == "cmrc2018":
            for article in json.loads(read_text(path))["data"]:
                add(path, "title", article.get("title", ""))
                for paragraph in article["paragraphs"]:
                    add(path, "context", paragraph["context"])
                    for qa in paragraph["qas"]:
                        add(path, "question", qa["question"])
                        add_pair(path, "question+context", qa["question"], paragraph["context"])
                        for answer in qa.get("answers", []):
                            add(path, "answer", answer["text"])
        elif task == "c3":
            for lines, questions, *_ in json.loads(read_text(path)):   # CLUE's test files have no doc id
                dialogue = "||".join(lines)
                add(path, "dialogue", dialogue)
                for q in questions:
                    add(path, "question", q["question"])
                    add_pair(path, "question+dialogue", q["question"], dialogue)
                    for choice in q["choice"]:
                        add(path, "choice", choice)
                        add_pair(path, "choice+question", choice, q["question"])
                    add(path, "answer", q.get("answer", ""))
    return texts, pairs


def _as_text(value):
    return "；".join(value) if isinstance(value, list) else str(value)


def _json_line_texts_of(record):
    """Every string field of a JSON-lines record, nested ones (wsc spans, cluener entities) included."""
    for field, value in record.items():
        if field in METADATA:
            continue
        if isinstance(value, str):
            yield field, value
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):  # csl keywords
            yield field, "；".join(value)
        elif field == "target" and isinstance(value, dict):  # cluewsc2020 spans
            for key, span in value.items():
                if isinstance(span, str):
                    yield f"target.{key}", span
        elif field == "label" and isinstance(value, dict):  # cluener entities
            for entities in value.values():
                for entity in entities:
                    yield "label.entity", entity


def sample(items, n, seed=0):
    """A deterministic sample of about ``n`` items, distinct within each source, drawn from every source in
    proportion, at least 50 from each."""
    by_source = {}
    for item in dict.fromkeys(items):
        by_source.setdefault(item[0], []).append(item)
    share = n / max(len(items), 1)
    rng = random.Random(seed)
    out = []
    for source in sorted(by_source):
        group = by_source[source]
        k = min(len(group), max(50, round(len(group) * share)))
        out.extend(rng.sample(group, k))
    return out


def run_bert4keras_tokenizer(texts, pairs, vocab_path, lower=True):
    """bert4keras's outputs: per text [ids, segs, tokens, mapping], per (a, b, maxlen) pair [ids, segs]."""
    from bert4keras_oracle import run_bert4keras

    with tempfile.TemporaryDirectory() as tmp:
        jobs, out = Path(tmp) / "jobs.json", Path(tmp) / "out.jsonl"
        jobs.write_text(json.dumps({"texts": texts, "pairs": pairs, "lower": lower}), encoding="utf-8")
        run_bert4keras(ORACLE, vocab_path, jobs, out, Path(__file__).resolve().parent, timeout=3600)
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").split("\n") if line]
    return rows[:len(texts)], rows[len(texts):]


def compare(tokenizer, texts, pairs, vocab_path):
    """Mismatches as (kind, source, text or pair, what differs); also the unique counts checked.

    ``texts``: (source, text); ``pairs``: (source, a, b, maxlen). encode_batch is checked on the texts
    and on the pairs of each maxlen.
    """
    unique_texts = list(dict.fromkeys(t for _, t in texts))
    unique_pairs = list(dict.fromkeys(p[1:] for p in pairs))
    theirs_texts, theirs_pairs = run_bert4keras_tokenizer(unique_texts, unique_pairs, vocab_path,
                                                          tokenizer.do_lower_case)
    sources = {}
    for source, *item in texts + pairs:
        sources.setdefault(item[0] if len(item) == 1 else tuple(item), source)
    names = ("ids", "segment ids", "tokens", "rematch")
    batch_texts = tokenizer.encode_batch(unique_texts)
    batch_pairs = {}
    for maxlen in {p[2] for p in unique_pairs}:
        group = [p for p in unique_pairs if p[2] == maxlen]
        encoded = tokenizer.encode_batch([p[0] for p in group], [p[1] for p in group], maxlen)
        batch_pairs.update(zip(group, encoded))
    batch_pairs = [batch_pairs[p] for p in unique_pairs]
    mismatches = []
    for text, theirs, batched in zip(unique_texts, theirs_texts, batch_texts):
        ours = outputs(tokenizer, text)
        differs = [name for name, x, y in zip(names, ours, theirs) if x != y]
        differs += ["encode_batch"] if list(batched) != theirs[:2] else []
        if differs:
            mismatches.append(("text", sources[text], text, differs))
    for pair, theirs, batched in zip(unique_pairs, theirs_pairs, batch_pairs):
        ours = list(tokenizer.encode(*pair))
        differs = [name for name, x, y in zip(names, ours, theirs) if x != y]
        differs += ["encode_batch"] if list(batched) != theirs else []
        if differs:
            mismatches.append(("pair", sources[pair], pair, differs))
    return mismatches, len(unique_texts), len(unique_pairs)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "clue_data"))
    parser.add_argument("--vocab", default=str(REPO.parent / "shared" / "vocab" / "chinese_bert_vocab.txt"))
    parser.add_argument("--sample", type=int, default=None, help="check a deterministic sample of N texts")
    args = parser.parse_args()

    texts, pairs = collect(args.data_dir)
    if args.sample:
        texts, pairs = sample(texts, args.sample), sample(pairs, args.sample // 4)
    fields = Counter(source for source, _ in texts)
    print(f"{len(texts)} texts from {len(fields)} file fields, {len(pairs)} pairs (maxlen {PAIR_MAXLEN})")
    for source, count in sorted(fields.items()):
        print(f"  {count:7d}  {source}")
    start = time.perf_counter()
    mismatches, n_texts, n_pairs = compare(Tokenizer(args.vocab), texts, pairs, args.vocab)
    print(f"checked {n_texts} unique texts (ids, segment ids, tokens, rematch) and {n_pairs} unique pairs "
          f"in {time.perf_counter() - start:.0f} s")
    for kind, source, text, differs in mismatches[:20]:
        print(f"MISMATCH {kind} [{source}] {', '.join(differs)}: {text!r:.200}")
    print(f"mismatches: {len(mismatches)}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
