"""CLUEWSC2020 (Winograd schema): does the pronoun (span2) refer to the noun phrase (span1)? true/false.

Framing as the bert4keras CLUE baseline: both spans marked in the text, span1 as _span1_ and span2 as
[span2] (RoFormerV2's recipe marks both as [[span]]), then [CLS] text [SEP] -> [CLS] vector -> softmax.
Default 30 epochs (1,244 training examples). Dev metric accuracy; writes results/cluewsc11_predict.json
(and cluewsc10 from test1.0.json when present).

    python tasks/wsc.py --data-dir ~/clue_data --model bert-base --model-dir ~/chinese_L-12_H-768_A-12
"""

import functools

from clue import classification, cli

TASK = "cluewsc2020"
FIELDS = ("text", "target")


def frame(record, family="bert"):
    """The text with both spans marked. Where one span ends exactly where the other starts, the first one's
    closing mark comes first: "_A_[B]", "[[A]][[B]]"."""
    if family == "roformer_v2":   # RoFormerV2's clue/wsc.py: both spans as [[span]]
        marks = {"span1": ("[[", "]]"), "span2": ("[[", "]]")}
    else:                         # the bert4keras CLUE baseline: _span1_ and [span2]
        marks = {"span1": ("_", "_"), "span2": ("[", "]")}
    text, target = record["text"], record["target"]
    inserts = []
    for span, (left, right) in marks.items():
        start, words = target[f"{span}_index"], target[f"{span}_text"]
        if text[start:start + len(words)] != words:
            raise ValueError(f"line {record.get('_line')}: {span}_text {words!r} is not at {span}_index "
                             f"{start} of the text (found {text[start:start + len(words)]!r})")
        inserts += [(start, 1, left), (start + len(words), 0, right)]   # 0: a close sorts before an open
    pieces, done = [], 0
    for position, _, mark in sorted(inserts):
        pieces += [text[done:position], mark]
        done = position
    return ("".join(pieces) + text[done:],)


def main(argv=None):
    run = cli.start(TASK, argv)
    return classification.main(TASK, FIELDS, functools.partial(frame, family=run.spec.family), run=run)


if __name__ == "__main__":
    cli.run(main)
