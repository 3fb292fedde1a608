"""CLUEWSC2020 (Winograd schema): does the pronoun (span2) refer to the noun phrase (span1)? true/false.

Framing as the bert4keras CLUE baseline: both spans marked in the text, span1 as _span1_ and span2 as
[span2] (RoFormerV2's recipe marks both as [[span]]), then [CLS] text [SEP] -> [CLS] vector -> softmax.
Default 30 epochs (1,244 training examples). Dev metric accuracy; writes results/cluewsc11_predict.json
(and cluewsc10 from test1.0.json when present).

    python tasks/wsc.py --data-dir ~/clue_data --model bert-base --model-dir ~/chinese_L-12_H-768_A-12
"""

import functools

from clue import batching, classification, cli, heads, metrics, predictions, training

TASK = "cluewsc2020"


def frame(record, family="bert"):
    """The text with both spans marked. Where one span ends exactly where the other starts, the first one's
    closing mark comes first: "_A_[B]", "[[A]][[B]]"."""
    if family == "roformer_v2":   # RoFormerV2's clue/wsc.py: both spans as [[span]]
        marks = {"span1": ("[[", "]]"), "span2": ("[[", "]]")}
    else:                         # the bert4keras CLUE baseline: _span1_ and [span2]
        marks = {"span1": ("_", "_"), "span2": ("[", "]")}
    text, target = record["text"], record["target"]
    inserts = []
    for span, (left, right) in marks.items():
        start, words = target[f"{span}_index"], target[f"{span}_text"]
        if text[start:start + len(words)] != words:
            raise ValueError(f"line {record.get('_line')}: {span}_text {words!r} is not at {span}_index "
                             f"{start} of the text (found {text[start:start + len(words)]!r})")
        inserts += [(start, 1, left), (start + len(words), 0, right)]   # 0: a close sorts before an open
    pieces, done = [], 0
    for position, _, mark in sorted(inserts):
        pieces += [text[done:position], mark]
        done = position
    return ("".join(pieces) + text[done:],)


def main(argv=None):
    run = cli.start(TASK, argv)
    args, labels = run.args, run.task.labels
    framing = functools.partial(frame, family=run.spec.family)   # RoFormerV2 marks its spans its own way

    def examples(records):   # (token_ids, segment_ids, label index) per record
        return classification.encode(run.tokenizer, records, framing, labels, args.maxlen, args.second_segment)

    def batches(found, shuffle=False):   # padded per batch, similar lengths together; shuffled by (seed, epoch)
        return batching.Batches(found, batching.pad_inputs, args.batch_size, shuffle, args.seed,
                                bucket=batching.BUCKET)

    # data: records -> examples
    train = examples(run.read("train"))
    dev = examples(run.read("dev"))

    # head: the encoder's [CLS] vector (or --pooling) -> softmax over the labels
    model = heads.classifier(run.encoder(), len(labels), args.pooling, seed=args.seed)

    def evaluate(model):
        probs = batching.predict(model, batches(dev))
        return metrics.accuracy([label for _, _, label in dev], probs.argmax(-1))

    # fit, keeping the best dev epoch (or load it: --mode eval / predict)
    score = training.fit(model, batches(train, shuffle=True), evaluate, run, loss="sparse_categorical_crossentropy")

    # predict dev and each test file with the best weights: label strings, the probabilities kept beside
    for split, out in run.outputs():
        records = run.read(split)
        probs = batching.predict(model, batches(examples(records)))
        predictions.Labels.of(records, probs, labels).write(out)
        print(f"wrote {out} ({len(records)} lines)")
    return score


if __name__ == "__main__":
    cli.run(main)
