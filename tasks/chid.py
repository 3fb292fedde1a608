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


def main(argv=None):
    run = cli.start(TASK, argv)
    args, tokenizer = run.args, run.tokenizer

    def examples(records):   # (one sequence per candidate, answer index) per blank
        contexts, out = {}, []   # contexts of every blank of a passage, made once per passage
        for r in records:
            passage = (r["group"], r["passage"])
            if run.spec.family == "roformer_v2":   # RoFormerV2's clue/chid.py: the idiom between the sides
                left, right = multiple_choice.blank_sides(r["text"], r["id"], args.maxlen - 8)
                ids = multiple_choice.idiom_between(tokenizer, r["candidates"], left, right)
            else:
                if passage not in contexts:
                    contexts[passage] = multiple_choice.blank_contexts(tokenizer, r["text"], args.maxlen - 7)
                context = contexts[passage][r["id"]]
                ids = multiple_choice.chid_choices(tokenizer, r["candidates"], context, args.maxlen)
            out.append((ids, r["label"] or 0))
        return out

    def batches(found, shuffle=False):   # (batch, 10, len) token ids
        return batching.Batches(found, functools.partial(multiple_choice.collate, num_choices=NUM_CHOICES),
                                args.batch_size, shuffle, args.seed, length_of=multiple_choice.longest_choice)

    # data: the blanks (train and dev labelled from their *_answer.json files)
    train = examples(run.read("train"))
    dev = run.read("dev")
    dev_examples = examples(dev)

    # head: [CLS] vector -> Dense(1) per candidate -> softmax over the candidates
    model = heads.choice_scorer(run.encoder(), NUM_CHOICES, args.pooling, seed=args.seed)

    def predict(records, found):   # candidate probabilities; the blanks of a line pick distinct ones (decode)
        return predictions.Assignment.of(records, batching.predict(model, batches(found)))

    def evaluate(model):
        return metrics.accuracy([r["label"] for r in dev], predict(dev, dev_examples).decode())

    # fit, keeping the best dev epoch (or load it: --mode eval / predict)
    training.fit(model, batches(train, shuffle=True), evaluate, run, loss="sparse_categorical_crossentropy")

    # predict dev and each test file with the best weights: {blank: candidate index}
    for split, out in run.outputs():
        records = run.read(split)
        predict(records, examples(records)).write(out)
        print(f"wrote {out} ({len(records)} blanks)")


if __name__ == "__main__":
    cli.run(main)
