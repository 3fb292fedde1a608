"""CLUEWSC2020 (Winograd schema): does the pronoun (span2) refer to the noun phrase (span1)? true/false.

Framing as the bert4keras CLUE baseline: both spans marked in the text, span1 as _span1_ and span2 as
[span2], then [CLS] text [SEP] -> [CLS] vector -> softmax. Default 30 epochs (1,244 training examples).
Dev metric accuracy; writes results/cluewsc11_predict.json (and cluewsc10 from test1.0.json when present).

    python tasks/wsc.py --data-dir ~/clue_data --model bert-base --model-dir ~/chinese_L-12_H-768_A-12
"""

from clue import classification, cli

TASK = "cluewsc2020"
FIELDS = ("text", "target")


def frame(record):
    """The text with span1 wrapped in "_" and span2 in "[ ]", markers inserted from the end backwards."""
    text, target = record["text"], record["target"]
    marks = []
    for span, (left, right) in (("span1", ("_", "_")), ("span2", ("[", "]"))):
        start, words = target[f"{span}_index"], target[f"{span}_text"]
        if text[start:start + len(words)] != words:
            raise ValueError(f"line {record.get('_line')}: {span}_text {words!r} is not at {span}_index "
                             f"{start} of the text (found {text[start:start + len(words)]!r})")
        marks += [(start + len(words), right), (start, left)]
    for position, mark in sorted(marks, key=lambda m: m[0], reverse=True):
        text = text[:position] + mark + text[position:]
    return (text,)


def main(argv=None):
    return classification.main(TASK, FIELDS, frame, argv)


if __name__ == "__main__":
    cli.run(main)
