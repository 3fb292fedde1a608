"""C3: multiple-choice reading comprehension of Chinese exam dialogues (d-) and mixed-genre texts (m-).

Framing as the bert4keras CLUE baseline: each choice is read with its passage and question,
[CLS] passage [SEP] question [SEP] choice [SEP] (--maxlen 512, the longest part cut first), scored by the
[CLS] vector and a Dense(1); a softmax over the question's choices (2 to 4; padded to 4 and masked) picks
the answer. Gradient accumulation as the baseline (batch 4, 4 steps). Dev metric accuracy. Writes
results/c311_predict.json (c310 from test1.0.json), lines {"id": <question id>, "label": "<choice index>"}.

Reads CLUE's d-/m-{train,dev}.json, test1.1.json, test1.0.json, or the upstream c3-d-/c3-m- files.

    python tasks/c3.py --data-dir ~/clue_data --model bert-base --model-dir ~/chinese_L-12_H-768_A-12
"""

from clue import choices, cli, metrics, predictions, training
from clue.data import load_c3

TASK = "c3"
NUM_CHOICES = 4


def main(argv=None):
    run = cli.start(TASK, argv)
    args, tokenizer = run.args, run.tokenizer

    def load(found):   # the upstream test set is two files: the registry finds its d- part, the m- part joins
        return load_c3(run.files["test"] if getattr(found, "name", "").endswith("d-test.json") else found)

    def examples(records):
        return [(choices.c3_choices(tokenizer, "||".join(r["context"]), r["question"], r["choices"][:NUM_CHOICES],
                                    args.maxlen), r["label"] or 0) for r in records]

    def batches(found, shuffle=False):
        collate = lambda chunk: choices.choice_batch(chunk, NUM_CHOICES)  # noqa: E731
        return choices.Collated(found, collate, args.batch_size, shuffle, args.seed)

    # data: each question -> one sequence per choice -> batches of (batch, 4, len)
    train = examples(run.load("train", load))
    dev = examples(run.load("dev", load))

    # head: [CLS] vector -> Dense(1) per choice -> softmax over the choices
    model = choices.choice_model(run.encoder(), NUM_CHOICES, args.pooling, seed=args.seed)

    def predict(found):   # the choice probabilities of each question
        return training.predict(model, batches(found))

    def evaluate(model):
        return metrics.accuracy([label for _, label in dev], predict(dev).argmax(-1))

    # fit, keeping the best dev epoch (or load it: --mode eval / predict)
    training.fit(model, batches(train, shuffle=True) if train else None, evaluate, run)

    # predict dev and each test file with the best weights; the label is the choice index as a string
    for split, out in run.outputs():
        records = run.load(split, load)
        predictions.Labels.of(records, predict(examples(records)), run.task.labels).write(out)
        print(f"wrote {out} ({len(records)} lines)")


if __name__ == "__main__":
    cli.run(main)
