"""CLUENER2020: fine-grained named entities in news sentences, 10 types (address, book, company, ...).

Framing as the bert4keras CLUE baseline: [CLS] text [SEP] -> a GlobalPointer with one head per entity
type scoring every (start, end) token pair (RoFormerV2's recipe: an EfficientGlobalPointer); the multi-label
loss pushes entities above 0 and the rest below, and every span scored above 0 is kept. Dev metric: the
official CLUENER score (per type F1 over the entity strings of each sentence, macro average over the types).
Writes results/cluener_predict.json, lines {"id": ..., "label": {type: {entity: [[start, end], ...]}}} with
inclusive character offsets.

    python tasks/cluener.py --data-dir ~/clue_data --model bert-base --model-dir ~/chinese_L-12_H-768_A-12
"""

import functools

from clue import batching, cli, heads, metrics, ner, predictions, training
from clue.registry import CLUENER_TYPES

TASK = "cluener"
TYPES = CLUENER_TYPES   # one span head per entity type, in this order


# the task's pieces, which main() puts together and clue.predict (clue-predict) predicts with
def examples(tokenizer, records, maxlen):   # sentences -> [CLS] text [SEP] with gold (type, start token, end token)
    return ner.sentences(tokenizer, records, TYPES, maxlen)


def batches(sentences, batch_size, shuffle=False, seed=0):   # dense (heads, len, len) targets made per batch
    return batching.Batches(sentences, functools.partial(ner.collate, heads=len(TYPES)), batch_size, shuffle, seed,
                            length_of=ner.sentence_length)


def head(encoder, family, seed=None):   # one GlobalPointer head per entity type over the encoder's last layer
    # RoFormerV2's recipe shares one query and key among the heads (EfficientGlobalPointer)
    return heads.span_scorer(encoder, heads=len(TYPES), seed=seed, efficient=family == "roformer_v2")


def predict(model, records, sentences, batch_size):   # every text pair's score per type; above 0: an entity
    tables = batching.predict(model, batches(sentences, batch_size), reduce=ner.pointer_table)
    return predictions.Entities.of(records, sentences, tables, TYPES)


def main(argv=None):
    run = cli.start(TASK, argv)
    args, tokenizer = run.args, run.tokenizer

    # data: sentences with their gold entities
    train = examples(tokenizer, run.read("train"), args.maxlen)
    dev = run.read("dev")
    dev_sentences = examples(tokenizer, dev, args.maxlen)

    # head: a GlobalPointer head per entity type
    model = head(run.encoder(), run.spec.family, seed=args.seed)

    def evaluate(model):
        found = predict(model, dev, dev_sentences, args.batch_size).decode()
        return metrics.cluener_f1([r["label"] for r in dev], found)

    # fit, keeping the best dev epoch (or load it: --mode eval / predict)
    training.fit(model, batches(train, args.batch_size, shuffle=True, seed=args.seed), evaluate, run,
                 loss=heads.span_multilabel_crossentropy)

    # predict dev and each test file with the best weights, one line per sentence in file order
    for split, out in run.outputs():
        records = run.read(split)
        predict(model, records, examples(tokenizer, records, args.maxlen), args.batch_size).write(out)
        print(f"wrote {out} ({len(records)} lines)")


if __name__ == "__main__":
    cli.run(main)
