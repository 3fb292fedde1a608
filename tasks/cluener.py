"""CLUENER2020: fine-grained named entities in news sentences, 10 types (address, book, company, ...).

Framing as the bert4keras CLUE baseline: [CLS] text [SEP] -> a GlobalPointer with one head per entity
type scoring every (start, end) token pair (RoFormerV2's recipe: an EfficientGlobalPointer); the multi-label
loss pushes entities above 0 and the rest below, and every span scored above 0 is kept. Dev metric: the
official CLUENER score (per type F1 over the entity strings of each sentence, macro average over the types).
Writes results/cluener_predict.json, lines {"id": ..., "label": {type: {entity: [[start, end], ...]}}} with
inclusive character offsets.

    python tasks/cluener.py --data-dir ~/clue_data --model bert-base --model-dir ~/chinese_L-12_H-768_A-12
"""

from clue import cli, metrics, predictions, spans, training
from clue.data import CLUENER_TYPES, load_cluener

TASK = "cluener"
TYPES = CLUENER_TYPES   # one span head per entity type, in this order


def main(argv=None):
    run = cli.start(TASK, argv)
    args, tokenizer = run.args, run.tokenizer

    def examples(records):
        return [spans.ner_example(tokenizer, r["text"], [(kind, a, b) for a, b, kind in r["entities"] or ()],
                                  TYPES, args.maxlen) for r in records]

    def batches(found, shuffle=False):
        collate = lambda chunk: spans.ner_batch(chunk, len(TYPES))  # noqa: E731
        return spans.Collated(found, collate, args.batch_size, shuffle, args.seed)

    # data: sentences -> [CLS] text [SEP] with gold (type, start token, end token) -> padded batches
    train = examples(run.load("train", load_cluener))
    dev = run.load("dev", load_cluener)
    dev_examples = examples(dev)

    # head: one GlobalPointer head per entity type over the encoder's last layer; RoFormerV2's recipe shares
    # one query and key among the heads (EfficientGlobalPointer)
    model = spans.span_model(run.encoder(), heads=len(TYPES), seed=args.seed,
                             efficient=run.spec.family == "roformer_v2")

    def predict(records, found):   # every pair's score per type; the pairs above 0 are the entities (decode)
        tables = spans.predict_each(model, batches(found), spans.pointer_table)
        return predictions.Entities.of(records, found, tables, TYPES)

    def evaluate(model):
        return metrics.cluener_f1([r["label"] for r in dev], predict(dev, dev_examples).decode())

    # fit, keeping the best dev epoch (or load it: --mode eval / predict)
    training.fit(model, batches(train, shuffle=True) if train else None, evaluate, run,
                 loss=spans.span_multilabel_crossentropy)

    # predict dev and each test file with the best weights, one line per sentence in file order
    for split, out in run.outputs():
        records = run.load(split, load_cluener)
        predict(records, examples(records)).write(out)
        print(f"wrote {out} ({len(records)} lines)")


if __name__ == "__main__":
    cli.run(main)
