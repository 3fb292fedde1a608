"""A small ChID dataset in the CLUE format, generated here (no real ChID text exists in ../shared).

CLUE's layout: ``train.json``/``dev.json``/``test1.1.json`` (and ``test1.0.json``) hold one JSON object per
line, ``{"candidates": [10 idioms], "content": [passages with #idiomNNNNNN# blanks]}``; the blanks of a
line share its candidates, and ``train_answer.json``/``dev_answer.json`` map each blank to the index of its
idiom among the candidates.

The idioms are random four-character strings. Each idiom has a cue character that the passages write just
before its blank, so a model can learn the task.
"""

import json
import random

COMMON = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处理"


def _idiom(rng):
    return "".join(rng.choice(COMMON) for _ in range(4))


def _filler(rng, n):
    return "".join(rng.choice(COMMON) for _ in range(n)) + "。"


def make_chid(folder, sizes=(("train", 12), ("dev", 6), ("test1.1", 6), ("test1.0", 4)), seed=0):
    """Write the ChID files under ``folder``; returns {split: (lines, answers)} for checking outputs.

    ``sizes`` gives the number of lines per split; each line has 10 candidates and 1-3 passages with 1-2
    blanks each (at most 6 blanks a line, each with a different right idiom).
    """
    rng = random.Random(seed)
    pool = list(dict.fromkeys(_idiom(rng) for _ in range(60)))
    cue = {idiom: COMMON[i % len(COMMON)] for i, idiom in enumerate(pool)}
    folder.mkdir(parents=True, exist_ok=True)
    blank, written = 0, {}
    for split, count in sizes:
        lines, answers = [], {}
        for _ in range(count):
            candidates = rng.sample(pool, 10)
            answer_order = rng.sample(range(10), 6)   # distinct right answers within a line
            content = []
            for _ in range(rng.randint(1, 3)):
                passage = _filler(rng, rng.randint(5, 30))
                for _ in range(rng.randint(1, 2)):
                    index = answer_order.pop()
                    key = f"#idiom{blank:06d}#"
                    blank += 1
                    answers[key] = index
                    passage += _filler(rng, rng.randint(3, 20))[:-1] + cue[candidates[index]] + key
                    passage += _filler(rng, rng.randint(3, 20))
                content.append(passage)
            lines.append({"candidates": candidates, "content": content})
        text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        (folder / f"{split}.json").write_text(text, encoding="utf-8")
        if split in ("train", "dev"):
            (folder / f"{split}_answer.json").write_text(json.dumps(answers, indent=1), encoding="utf-8")
        written[split] = (lines, answers)
    return written
