"""CSL (Chinese Scientific Literature): are the keywords the real keywords of the abstract? Labels 0/1.

Framing as the bert4keras CLUE baseline: [CLS] keywords joined by "；" [SEP] abstract [SEP], one segment
-> [CLS] vector -> softmax. Dev metric accuracy; writes results/csl_predict.json.

    python tasks/csl.py --data-dir ~/clue_data --model bert-base --model-dir ~/chinese_L-12_H-768_A-12
"""

from clue import cli, heads, metrics, submission, training

TASK = "csl"
FIELDS = ("keyword", "abst")


def frame(record):
    return "；".join(record["keyword"]), record["abst"]

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
