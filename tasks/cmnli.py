"""CMNLI (Chinese MultiNLI): does the premise entail, contradict or say nothing about the hypothesis?

Framing as the bert4keras CLUE baseline: [CLS] sentence1 [SEP] sentence2 [SEP], one segment -> [CLS]
vector -> softmax over entailment / neutral / contradiction; rows labelled "-" (no majority) are dropped.
Dev metric accuracy; writes results/cmnli_predict.json.

    python tasks/cmnli.py --data-dir ~/clue_data --model bert-base --model-dir ~/chinese_L-12_H-768_A-12
"""

from clue import classification, cli

TASK = "cmnli"
FIELDS = ("sentence1", "sentence2")


def frame(record):
    return record["sentence1"], record["sentence2"]


def main(argv=None):
    return classification.main(TASK, FIELDS, frame, argv)


if __name__ == "__main__":
    cli.run(main)
