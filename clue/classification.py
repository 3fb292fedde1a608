"""The flow the seven classification tasks share, as the bert4keras CLUE baselines write it:
load data -> batches -> encoder + pooled softmax head -> fit keeping the best dev epoch -> predict dev and
the test files -> write label files (``clue.predictions`` keeps the probabilities beside them).

A task script (tasks/afqmc.py ...) supplies only what is its own: the fields it reads and ``frame``, which
turns a record into one text or a pair of texts. To try another head or decoding, copy this function
into the script and edit it there.
"""

from clue import cli, heads, metrics, predictions, training


def main(task, fields, frame, argv=None, run=None):
    """Train (or eval/predict, per ``--mode``) ``task`` and write its leaderboard files; returns the dev score.
    ``run``: a ``cli.start`` the script already made (to pick its framing by the encoder family)."""
    run = run or cli.start(task, argv)
    labels, args = run.task.labels, run.args

    # data -> (token_ids, segment_ids), label index -> padded batches, shuffled per epoch for training
    train = run.batches(run.examples(run.read("train", fields), frame), shuffle=True)
    dev = run.examples(run.read("dev", fields), frame)
    dev_batches = run.batches(dev)

    # head: pooled last layer -> softmax over the labels
    model = heads.classifier(run.encoder(), len(labels), args.pooling, seed=args.seed)

    def evaluate(model):
        return metrics.accuracy(dev[1], training.predict(model, dev_batches).argmax(-1))

    # fit, keeping the best dev epoch (or load it: --mode eval / predict)
    score = training.fit(model, train, evaluate, run)

    # predict dev and each test file with the best weights: label strings, the probabilities kept beside
    for split, out in run.outputs():
        records = run.read(split, fields)
        probs = training.predict(model, run.batches(run.examples(records, frame)))
        predictions.Labels.of(records, probs, labels).write(out)
        print(f"wrote {out} ({len(records)} lines)")
    return score
