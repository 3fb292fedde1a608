"""TNEWS (Toutiao news titles): which of 15 news categories does a headline belong to?

Framing as the bert4keras CLUE baseline: [CLS] sentence [SEP] -> [CLS] vector -> softmax over the 15 label
codes of labels.json ("100" ... "116"). Dev metric accuracy; writes results/tnews11_predict.json from
test.json (and tnews10_predict.json from test1.0.json when present).

    python tasks/tnews.py --data-dir ~/clue_data --model bert-base --model-dir ~/chinese_L-12_H-768_A-12
"""

from clue import classification, cli

TASK = "tnews"
FIELDS = ("sentence",)


def frame(record):
    return (record["sentence"],)


def main(argv=None):
    return classification.main(TASK, FIELDS, frame, argv)


if __name__ == "__main__":
    cli.run(main)
