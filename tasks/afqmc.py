"""AFQMC (Ant Financial Question Matching): do two customer questions mean the same thing? Labels 0/1.

Framing as the bert4keras CLUE baseline: [CLS] sentence1 [SEP] sentence2 [SEP], one segment -> [CLS]
vector -> softmax. Dev metric accuracy; writes results/afqmc_predict.json.

    python tasks/afqmc.py                     # no data configured: the built-in demo (tiny model)
    python tasks/afqmc.py --data-dir ~/clue_data --model bert-base --model-dir ~/chinese_L-12_H-768_A-12
"""

from clue import classification, cli

TASK = "afqmc"
FIELDS = ("sentence1", "sentence2")


def frame(record):
    return record["sentence1"], record["sentence2"]


def main(argv=None):
    return classification.main(TASK, FIELDS, frame, argv)


if __name__ == "__main__":
    cli.run(main)
