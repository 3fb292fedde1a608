"""CLUEWSC2020 (Winograd schema): does the pronoun (span2) refer to the noun phrase (span1)? true/false.

Framing as the bert4keras CLUE baseline: both spans marked in the text, span1 as _span1_ and span2 as
[span2], then [CLS] text [SEP] -> [CLS] vector -> softmax. Default 30 epochs (1,244 training examples).
Dev metric accuracy; writes results/cluewsc11_predict.json (and cluewsc10 from test1.0.json when present).

    python tasks/wsc.py --data-dir ~/clue_data --model bert-base --model-dir ~/chinese_L-12_H-768_A-12
"""

from clue import cli, heads, metrics, submission, training

TASK = "cluewsc2020"
FIELDS = ("text", "target")


def frame(record):
    """The text with span1 wrapped in "_" and span2 in "[ ]", markers inserted from the end backwards."""
    text, target = record["text"], record["target"]
    marks = []
    for span, (left, right) in (("span1", ("_", "_")), ("span2", ("[", "]"))):
        start, words = target[f"{span}_index"], target[f"{span}_text"]
        if text[start:start + len(words)] != words:
            raise ValueError(f"line {record.get('_line')}: {span}_text {words!r} is not at {span}_index "
                             f"{start} of the text (found {text[start:start + len(words)]!r})")
        marks += [(start + len(words), right), (start, left)]
    for position, mark in sorted(marks, key=lambda m: m[0], reverse=True):
        text = text[:position] + mark + text[position:]
    return (text,)


def main(argv=None):
    run = cli.start(TASK, argv)
    labels, args = run.task.labels, run.args

    # data -> (token_ids, segment_ids), label index -> padded batches, shuffled per epoch for training
    train = run.batches(run.examples(run.read("train", FIELDS), frame), shuffle=True)
    dev = run.examples(run.read("dev", FIELDS), frame)
    dev_batches = run.batches(dev)

    # head: pooled last layer -> softmax over the labels
    model = heads.classifier(run.encoder(), len(labels), args.pooling, seed=args.seed)

    def evaluate(model):
        return metrics.accuracy(dev[1], training.predict(model, dev_batches).argmax(-1))

    # fit, keeping the best dev epoch (or load it: --mode eval / predict)
    score = training.fit(model, train, evaluate, run)

    # predict each test file with the best weights; the leaderboard wants label strings
    for test_file, out in run.outputs():
        test = run.read(test_file, FIELDS)
        probs = training.predict(model, run.batches(run.examples(test, frame)))
        submission.write_labels(out, [r["id"] for r in test], [labels[i] for i in probs.argmax(-1)])
        print(f"wrote {out} ({len(test)} lines)")
    return score


if __name__ == "__main__":
    cli.run(main)
