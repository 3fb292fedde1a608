"""CMRC2018: span-extraction reading comprehension; the answer to a question is a span of a Wikipedia paragraph.

Framing as the bert4keras CLUE baseline: [CLS] question [SEP] context window [SEP], windows of --maxlen
(512) tokens sliding over the context with stride 128. A GlobalPointer scores every (start, end) pair of a
window's context jointly (question positions masked); a window without the answer points at [CLS]. At
prediction the best span over all windows of a question wins, cut from the context through the
tokenizer's character mapping. Dev metric: the official EM (F1 printed too). Writes
results/cmrc2018_predict.json, one JSON object {question_id: answer_text}.

    python tasks/cmrc2018.py --data-dir ~/clue_data --model bert-base --model-dir ~/chinese_L-12_H-768_A-12
"""

from clue import cli, metrics, predictions, spans, training
from clue.data import load_cmrc2018

TASK = "cmrc2018"
STRIDE = 128


def main(argv=None):
    run = cli.start(TASK, argv)
    args, tokenizer = run.args, run.tokenizer

    def windows(records, train=False):
        """Every window of every question; a training window knows where its first answer lies."""
        out = []
        for q, r in enumerate(records):
            answer = None
            if train and r["answers"]:
                answer = spans.locate_answer(r["context"], r["answers"][0], r["answer_starts"][0])
            found, c_spans = spans.cmrc_windows(tokenizer, r["question"], r["context"], answer, args.maxlen,
                                                STRIDE)
            out += [dict(w, question=q, c_spans=c_spans) for w in found]
        return out

    def batches(examples, shuffle=False):
        return spans.Collated(examples, spans.window_batch, args.batch_size, shuffle, args.seed)

    # data: questions -> windows over their contexts -> padded batches
    train = windows(run.load("train", load_cmrc2018), train=True)
    dev = run.load("dev", load_cmrc2018)
    dev_windows = windows(dev)

    # head: one GlobalPointer over the encoder's last layer; softmax over all (start, end) pairs
    model = spans.span_model(run.encoder(), heads=1, seed=args.seed)

    def predict(records, found):   # each question's best spans over its windows; the first is the answer
        tops = spans.predict_each(model, batches(found), lambda scores: spans.top_spans(scores[0]))
        return predictions.Answers.of(records, *spans.cmrc_nbest(found, tops, len(records)))

    def evaluate(model):
        golds, preds = [r["answers"] for r in dev], predict(dev, dev_windows).decode()
        print(f"dev F1 {metrics.cmrc2018_f1(golds, preds):.2%}", flush=True)
        return metrics.cmrc2018_em(golds, preds)

    # fit, keeping the best dev epoch (or load it: --mode eval / predict)
    training.fit(model, batches(train, shuffle=True) if train else None, evaluate, run,
                 loss=spans.span_crossentropy)

    # predict dev and each test file with the best weights: {question id: answer text}
    for split, out in run.outputs():
        records = run.load(split, load_cmrc2018)
        predict(records, windows(records)).write(out)
        print(f"wrote {out} ({len(records)} answers)")


if __name__ == "__main__":
    cli.run(main)
