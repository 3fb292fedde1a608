"""C3: multiple-choice reading comprehension of Chinese exam dialogues (d-) and mixed-genre texts (m-).

Framing as the bert4keras CLUE baseline: each choice is read with its passage and question,
[CLS] passage [SEP] question [SEP] choice [SEP] (--maxlen 512, the longest part cut first), scored by the
[CLS] vector and a Dense(1); a softmax over the question's choices (2 to 4; padded to 4 and masked) picks
the answer. Gradient accumulation as the baseline (batch 4, 4 steps). Dev metric accuracy. Writes
results/c311_predict.json (c310 from test1.0.json), lines {"id": <question id>, "label": "<choice index>"}.

Reads CLUE's d-/m-{train,dev}.json, test1.1.json, test1.0.json, or the upstream c3-d-/c3-m- files (the
upstream test set is both parts: its leaderboard file answers both).

    python tasks/c3.py --data-dir ~/clue_data --model bert-base --model-dir ~/chinese_L-12_H-768_A-12
"""

import functools

from clue import batching, cli, heads, metrics, multiple_choice, predictions, registry, training

TASK = "c3"
NUM_CHOICES = 4
LABELS = registry.get(TASK).labels   # a choice's index as the leaderboard file writes it: "0" ... "3"


# the task's pieces, which main() puts together and clue.predict (clue-predict) predicts with
def examples(tokenizer, records, maxlen):   # (one sequence per choice, answer index) per question
    return [(multiple_choice.c3_choices(tokenizer, "||".join(r["context"]), r["question"],
                                        r["choices"][:NUM_CHOICES], maxlen), r["label"] or 0) for r in records]


def batches(found, batch_size, shuffle=False, seed=0):   # (batch, 4, len) token ids and a mask of the real choices
    return batching.Batches(found, functools.partial(multiple_choice.collate, num_choices=NUM_CHOICES), batch_size,
                            shuffle, seed, length_of=multiple_choice.longest_choice)


def head(encoder, pooling, seed=None):   # [CLS] vector -> Dense(1) per choice -> softmax over the choices
    return heads.choice_scorer(encoder, NUM_CHOICES, pooling, seed=seed)


def predict(model, records, found, batch_size):   # the choice probabilities of each question; the label its best
    return predictions.Labels.of(records, batching.predict(model, batches(found, batch_size)), LABELS)


def main(argv=None):
    run = cli.start(TASK, argv)
    args, tokenizer = run.args, run.tokenizer

    # data: the questions of the d- and m- parts
    train = examples(tokenizer, run.read("train"), args.maxlen)
    dev = run.read("dev")
    dev_examples = examples(tokenizer, dev, args.maxlen)

    # head: a score per choice, softmax over the question's choices
    model = head(run.encoder(), args.pooling, seed=args.seed)

    def evaluate(model):
        probs = predict(model, dev, dev_examples, args.batch_size).probs
        return metrics.accuracy([r["label"] for r in dev], probs.argmax(-1))

    # fit, keeping the best dev epoch (or load it: --mode eval / predict)
    training.fit(model, batches(train, args.batch_size, shuffle=True, seed=args.seed), evaluate, run,
                 loss="sparse_categorical_crossentropy")

    # predict dev and each test file with the best weights; the label is the choice index as a string
    for split, out in run.outputs():
        records = run.read(split)
        predict(model, records, examples(tokenizer, records, args.maxlen), args.batch_size).write(out)
        print(f"wrote {out} ({len(records)} lines)")


if __name__ == "__main__":
    cli.run(main)
