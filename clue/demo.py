"""A small generated dataset in the AFQMC format, for the demo that runs when no data is configured.

AFQMC asks whether two customer-service questions mean the same thing. The generator composes questions
from a product, an intent and one of several phrasings of that intent; a pair is a paraphrase (label "1")
when product and intent agree. No CLUE text is used. It is easy enough for the tiny random-init model to
learn within a few epochs, so the demo shows dev accuracy rising.
"""

import json
import random
from pathlib import Path

PRODUCTS = ("花呗", "借呗", "余额宝", "信用卡", "银行卡", "红包", "积分", "账单")
INTENTS = (
    ("怎么还款", "如何还钱", "在哪里还款", "还款方法是什么"),
    ("怎么开通", "如何开启", "开通步骤是什么", "在哪里开通"),
    ("额度怎么提高", "如何提升额度", "可以提额吗", "提额要什么条件"),
    ("怎么关闭", "如何注销", "能不能关掉", "关闭方法是什么"),
    ("利息怎么算", "利率是多少", "收不收利息", "手续费多少"),
    ("为什么用不了", "无法使用怎么办", "突然不能用了", "显示异常怎么回事"),
)
OPENINGS = ("", "", "请问", "我的", "你好，", "想问下")
ENDINGS = ("", "？", "呢", "啊", "呀？")
SPLITS = {"train": 3000, "dev": 400, "test": 400}


def question(rng, product, intent):
    return rng.choice(OPENINGS) + product + rng.choice(INTENTS[intent]) + rng.choice(ENDINGS)


def pair(rng):
    """Two questions and whether they ask the same thing; half the pairs are paraphrases."""
    product, intent = rng.randrange(len(PRODUCTS)), rng.randrange(len(INTENTS))
    label = rng.random() < 0.5
    other_product, other_intent = product, intent
    if not label:   # change the product, the intent, or both
        while (other_product, other_intent) == (product, intent):
            if rng.random() < 0.6:
                other_product = rng.randrange(len(PRODUCTS))
            if rng.random() < 0.6:
                other_intent = rng.randrange(len(INTENTS))
    return question(rng, PRODUCTS[product], intent), question(rng, PRODUCTS[other_product], other_intent), label


def make_afqmc(folder, seed=0, sizes=None):
    """Write train.json, dev.json and test.json (unlabelled, with ids) in ``folder``; returns the folder."""
    rng = random.Random(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for split, size in (sizes or SPLITS).items():
        rows = []
        for i in range(size):
            s1, s2, label = pair(rng)
            row = {"sentence1": s1, "sentence2": s2}
            row = {"id": i, **row} if split == "test" else {**row, "label": str(int(label))}
            rows.append(json.dumps(row, ensure_ascii=False))
        (folder / f"{split}.json").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


BANNER = """\
==============================================================================
 DEMO: no CLUE data configured, so this runs the built-in demo: the `tiny`
 preset (random init, built-in vocabulary) on a small GENERATED dataset in the
 AFQMC format ({folder}). Its scores mean nothing.
 For real runs point at the data and the pretrained weights:
   python tasks/afqmc.py --data-dir ~/clue_data --model bert-base --model-dir ~/chinese_L-12_H-768_A-12
 (or set $CLUE_DATA_DIR and $CLUE_MODEL_DIR; the data folder holds afqmc/ or afqmc_public/)
=============================================================================="""
