"""IFLYTEK (app descriptions): which of 119 app categories does a long description belong to?

Framing as the bert4keras CLUE baseline: [CLS] sentence [SEP] (cut to --maxlen) -> [CLS] vector -> softmax
over the label codes "0" ... "118". Dev metric accuracy; writes results/iflytek_predict.json.

    python tasks/iflytek.py --data-dir ~/clue_data --model bert-base --model-dir ~/chinese_L-12_H-768_A-12
"""

from clue import classification, cli

TASK = "iflytek"
FIELDS = ("sentence",)


def frame(record):
    return (record["sentence"],)


def main(argv=None):
    return classification.main(TASK, FIELDS, frame, argv)


if __name__ == "__main__":
    cli.run(main)
