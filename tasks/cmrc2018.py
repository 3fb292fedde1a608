"""CMRC2018: span-extraction reading comprehension; the answer to a question is a span of a Wikipedia paragraph.

Framing as the bert4keras CLUE baseline: [CLS] question [SEP] context window [SEP], windows of --maxlen
(512) tokens sliding over the context with stride 128. A GlobalPointer scores every (start, end) pair of a
window's context jointly (question positions masked); a window without the answer points at [CLS]. At
prediction the best span over all windows of a question wins, cut from the context through the
tokenizer's character mapping. Dev metric: the official EM (F1 printed too). Writes
results/cmrc2018_predict.json, one JSON object {question_id: answer_text}.

    python tasks/cmrc2018.py --data-dir ~/clue_data --model bert-base --model-dir ~/chinese_L-12_H-768_A-12
"""

from clue import batching, cli, heads, metrics, predictions, reading, training

TASK = "cmrc2018"
STRIDE = 128


# the task's pieces, which main() puts together and clue.predict (clue-predict) predicts with
def examples(tokenizer, records, maxlen, train=False):   # questions -> windows over their contexts
    return reading.windows(tokenizer, records, maxlen, STRIDE, train=train)


def batches(windows, batch_size, shuffle=False, seed=0):
    return batching.Batches(windows, reading.collate, batch_size, shuffle, seed, length_of=reading.window_length)


def head(encoder, seed=None):   # one GlobalPointer over the encoder's last layer; softmax over all (start, end) pairs
    return heads.span_scorer(encoder, heads=1, seed=seed)


def predict(model, records, windows, batch_size):   # each question's best spans over its windows; the first wins
    tops = batching.predict(model, batches(windows, batch_size), reduce=lambda scores: reading.top_spans(scores[0]))
    return predictions.Answers.of(records, *reading.nbest(windows, tops, len(records)))


def main(argv=None):
    run = cli.start(TASK, argv)
    args, tokenizer = run.args, run.tokenizer

    # data: questions -> windows over their contexts (a training window knows where its answer lies)
    train = examples(tokenizer, run.read("train"), args.maxlen, train=True)
    dev = run.read("dev")
    dev_windows = examples(tokenizer, dev, args.maxlen)

    # head: one GlobalPointer over the encoder's last layer
    model = head(run.encoder(), seed=args.seed)

    def evaluate(model):
        golds, preds = [r["answers"] for r in dev], predict(model, dev, dev_windows, args.batch_size).decode()
        print(f"dev F1 {metrics.cmrc2018_f1(golds, preds):.2%}", flush=True)
        return metrics.cmrc2018_em(golds, preds)

    # fit, keeping the best dev epoch (or load it: --mode eval / predict)
    training.fit(model, batches(train, args.batch_size, shuffle=True, seed=args.seed), evaluate, run,
                 loss=heads.span_crossentropy)

    # predict dev and each test file with the best weights: {question id: answer text}
    for split, out in run.outputs():
        records = run.read(split)
        predict(model, records, examples(tokenizer, records, args.maxlen), args.batch_size).write(out)
        print(f"wrote {out} ({len(records)} answers)")


if __name__ == "__main__":
    cli.run(main)
