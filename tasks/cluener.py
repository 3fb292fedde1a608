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


def main(argv=None):
    run = cli.start(TASK, argv)
    args, tokenizer = run.args, run.tokenizer

    def batches(sentences, shuffle=False):   # dense (heads, len, len) targets made per batch
        return batching.Batches(sentences, functools.partial(ner.collate, heads=len(TYPES)), args.batch_size,
                                shuffle, args.seed, length_of=ner.sentence_length)

    # data: sentences -> [CLS] text [SEP] with gold (type, start token, end token)
    train = ner.sentences(tokenizer, run.read("train"), TYPES, args.maxlen)
    dev = run.read("dev")
    dev_sentences = ner.sentences(tokenizer, dev, TYPES, args.maxlen)

    # head: one GlobalPointer head per entity type over the encoder's last layer; RoFormerV2's recipe shares
    # one query and key among the heads (EfficientGlobalPointer)
    model = heads.span_scorer(run.encoder(), heads=len(TYPES), seed=args.seed,
                              efficient=run.spec.family == "roformer_v2")

    def predict(records, sentences):   # every text pair's score per type; the pairs above 0 are the entities
        tables = batching.predict(model, batches(sentences), reduce=ner.pointer_table)
        return predictions.Entities.of(records, sentences, tables, TYPES)

    def evaluate(model):
        return metrics.cluener_f1([r["label"] for r in dev], predict(dev, dev_sentences).decode())

    # fit, keeping the best dev epoch (or load it: --mode eval / predict)
    training.fit(model, batches(train, shuffle=True), evaluate, run, loss=heads.span_multilabel_crossentropy)

    # predict dev and each test file with the best weights, one line per sentence in file order
    for split, out in run.outputs():
        records = run.read(split)
        predict(records, ner.sentences(tokenizer, records, TYPES, args.maxlen)).write(out)
        print(f"wrote {out} ({len(records)} lines)")


if __name__ == "__main__":
    cli.run(main)
