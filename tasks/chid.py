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

from clue import choices, cli, metrics, predictions, training
from clue.data import load_chid

TASK = "chid"
NUM_CHOICES = 10


def main(argv=None):
    run = cli.start(TASK, argv)
    args, tokenizer = run.args, run.tokenizer

    def read(source):   # train and dev blanks come with their answer files
        answers = run.files[f"{source}_answer"] if isinstance(source, str) else None
        return run.load(source, lambda path: load_chid(path, answers))

    def examples(records):
        contexts, out = {}, []   # contexts of every blank of a passage, made once per passage
        for r in records:
            passage = (r["group"], r["passage"])
            if run.spec.family == "roformer_v2":   # RoFormerV2's clue/chid.py: the idiom between the sides
                left, right = choices.blank_sides(r["text"], r["id"], args.maxlen - 8)
                ids = choices.idiom_between(tokenizer, r["candidates"], left, right)
            else:
                if passage not in contexts:
                    contexts[passage] = choices.blank_contexts(tokenizer, r["text"], args.maxlen - 7)
                ids = choices.chid_choices(tokenizer, r["candidates"], contexts[passage][r["id"]], args.maxlen)
            out.append((ids, r["label"] or 0))
        return out

    def batches(found, shuffle=False):
        collate = lambda chunk: choices.choice_batch(chunk, NUM_CHOICES)  # noqa: E731
        return choices.Collated(found, collate, args.batch_size, shuffle, args.seed)

    # data: each blank -> one sequence per candidate -> batches of (batch, 10, len)
    train = examples(read("train"))
    dev = read("dev")
    dev_examples = examples(dev)

    # head: [CLS] vector -> Dense(1) per candidate -> softmax over the candidates
    model = choices.choice_model(run.encoder(), NUM_CHOICES, args.pooling, seed=args.seed)

    def predict(records, found):   # candidate probabilities; the line's blanks share them out (decode)
        return predictions.Assignment.of(records, training.predict(model, batches(found)))

    def evaluate(model):
        return metrics.accuracy([r["label"] for r in dev], predict(dev, dev_examples).decode())

    # fit, keeping the best dev epoch (or load it: --mode eval / predict)
    training.fit(model, batches(train, shuffle=True) if train else None, evaluate, run)

    # predict dev and each test file with the best weights: {blank: candidate index}
    for split, out in run.outputs():
        records = read(split)
        predict(records, examples(records)).write(out)
        print(f"wrote {out} ({len(records)} blanks)")


if __name__ == "__main__":
    cli.run(main)
