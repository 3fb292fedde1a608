"""ChID: cloze test with Chinese idioms; each blank of a passage takes one of its line's 10 candidate idioms.

Framing as the bert4keras CLUE baseline: one sub-problem per blank, each candidate read with the context
around the blank, [CLS] idiom [SEP] left context [marker] right context [SEP] (--maxlen 64; the passage's
other blanks become [MASK]s), scored by the [CLS] vector and a Dense(1), softmax over the 10 candidates.
RoFormerV2's recipe frames [CLS] left [SEP] idiom [SEP] right [SEP] instead, the other blanks written
"_____" and the two sides cut to --maxlen - 8 characters together.
The blanks of one line share its candidates, so their picks are made together by the Hungarian assignment
(no idiom used twice). Dev metric accuracy. Writes results/chid11_predict.json (chid10 from test1.0.json),
one JSON object {"#idiomNNNNNN#": candidate index}.

    python tasks/chid.py --data-dir ~/clue_data --model bert-base --model-dir ~/chinese_L-12_H-768_A-12
"""

import functools

from clue import batching, cli, heads, metrics, multiple_choice, predictions, training

TASK = "chid"
NUM_CHOICES = 10


# the task's pieces, which main() puts together and clue.predict (clue-predict) predicts with
def examples(tokenizer, records, maxlen, family):   # (one sequence per candidate, answer index) per blank
    contexts, out = {}, []   # contexts of every blank of a passage, made once per passage
    for r in records:
        passage = (r["group"], r["passage"])
        if family == "roformer_v2":   # RoFormerV2's clue/chid.py: the idiom between the sides
            left, right = multiple_choice.blank_sides(r["text"], r["id"], maxlen - 8)
            ids = multiple_choice.idiom_between(tokenizer, r["candidates"], left, right)
        else:
            if passage not in contexts:
                contexts[passage] = multiple_choice.blank_contexts(tokenizer, r["text"], maxlen - 7)
            context = contexts[passage][r["id"]]
            ids = multiple_choice.chid_choices(tokenizer, r["candidates"], context, maxlen)
        out.append((ids, r["label"] or 0))
    return out


def batches(found, batch_size, shuffle=False, seed=0):   # (batch, 10, len) token ids
    return batching.Batches(found, functools.partial(multiple_choice.collate, num_choices=NUM_CHOICES), batch_size,
                            shuffle, seed, length_of=multiple_choice.longest_choice)


def head(encoder, pooling, seed=None):   # [CLS] vector -> Dense(1) per candidate -> softmax over the candidates
    return heads.choice_scorer(encoder, NUM_CHOICES, pooling, seed=seed)


def predict(model, records, found, batch_size):   # candidate probabilities; a line's blanks pick distinct ones
    return predictions.Assignment.of(records, batching.predict(model, batches(found, batch_size)))


def main(argv=None):
    run = cli.start(TASK, argv)
    args, tokenizer, family = run.args, run.tokenizer, run.spec.family

    # data: the blanks (train and dev labelled from their *_answer.json files)
    train = examples(tokenizer, run.read("train"), args.maxlen, family)
    dev = run.read("dev")
    dev_examples = examples(tokenizer, dev, args.maxlen, family)

    # head: a score per candidate, softmax over the candidates
    model = head(run.encoder(), args.pooling, seed=args.seed)

    def evaluate(model):
        picks = predict(model, dev, dev_examples, args.batch_size).decode()
        return metrics.accuracy([r["label"] for r in dev], picks)

    # fit, keeping the best dev epoch (or load it: --mode eval / predict)
    training.fit(model, batches(train, args.batch_size, shuffle=True, seed=args.seed), evaluate, run,
                 loss="sparse_categorical_crossentropy")

    # predict dev and each test file with the best weights: {blank: candidate index}
    for split, out in run.outputs():
        records = run.read(split)
        predict(model, records, examples(tokenizer, records, args.maxlen, family), args.batch_size).write(out)
        print(f"wrote {out} ({len(records)} blanks)")


if __name__ == "__main__":
    cli.run(main)
