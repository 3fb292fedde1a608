"""TNEWS (Toutiao news titles): which of 15 news categories does a headline belong to?

Framing as the bert4keras CLUE baseline: [CLS] sentence [SEP] -> [CLS] vector -> softmax over the 15 label
codes of labels.json ("100" ... "116"). Dev metric accuracy; writes results/tnews11_predict.json from
test.json (and tnews10_predict.json from test1.0.json when present).

    python tasks/tnews.py --data-dir ~/clue_data --model bert-base --model-dir ~/chinese_L-12_H-768_A-12

Leaderboard tricks are flags of every script (clue.tricks): --ema 0.999, --layer-lr-decay 0.9, --rdrop 1,
--fgm 1, and --eval-every 100 (dev also scored every 100 batches). A script that compiles and fits on its
own adds each in one line:

    optimizer = AdamW(2e-5, **tricks.optimizer_options(model, ema=0.999, layer_lr_decay=0.9))
    callbacks = tricks.scored_with_average([checkpoint])   # the checkpoint sees the averaged weights
    train, loss = tricks.rdrop(train, "sparse_categorical_crossentropy", alpha=1.0)
    model = tricks.fgm(model, epsilon=1.0)                  # the same layers: the model learns
    checkpoint = training.BestOnDev(evaluate, "accuracy", weights, state, every=100)   # --eval-every 100
"""

from clue import batching, classification, cli, heads, metrics, predictions, training

TASK = "tnews"


def frame(record):
    return (record["sentence"],)


def main(argv=None):
    run = cli.start(TASK, argv)
    args, labels = run.args, run.task.labels

    def examples(records):   # (token_ids, segment_ids, label index) per record
        return classification.encode(run.tokenizer, records, frame, labels, args.maxlen, args.second_segment)

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
