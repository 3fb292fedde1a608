"""CSL (Chinese Scientific Literature): are the keywords the real keywords of the abstract? Labels 0/1.

Framing as the bert4keras CLUE baseline: [CLS] keywords joined by "；" [SEP] abstract [SEP], one segment
-> [CLS] vector -> softmax. Dev metric accuracy; writes results/csl_predict.json.

    python tasks/csl.py --data-dir ~/clue_data --model bert-base --model-dir ~/chinese_L-12_H-768_A-12
"""

from clue import classification, cli

TASK = "csl"
FIELDS = ("keyword", "abst")


def frame(record):
    return "；".join(record["keyword"]), record["abst"]


def main(argv=None):
    return classification.main(TASK, FIELDS, frame, argv)


if __name__ == "__main__":
    cli.run(main)
