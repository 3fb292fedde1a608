"""The official CMRC2018 EM/F1 and CLUENER scores on hand-made cases, expected values worked out by hand, and
CMRC2018 EM/F1 against the official evaluator's logic (real ``nltk.word_tokenize``) on the dev set."""

import collections
import json
import pickle
import random
import re

import pytest

from clue.metrics import (
    METRICS, cluener_f1, cluener_type_scores, cmrc2018_em, cmrc2018_f1, cmrc_em_one, cmrc_f1_one,
    cmrc_segments, english_words, longest_common_run,
)


def test_segments_split_chinese_by_character_and_other_text_by_words():
    # "iPhone 6 Plus" is one non-Chinese run -> nltk's three words; 发/布 are single characters
    assert cmrc_segments("iPhone 6 Plus发布") == ["iphone", "6", "plus", "发", "布"]
    # 《》 and "，" are official punctuation: dropped; "3.5" stays one number
    assert cmrc_segments("《三体》，3.5亿") == ["三", "体", "3.5", "亿"]
    # a dropped "-" does not end the run, so "ω-force" becomes the single word "ωforce" (as the official)
    assert cmrc_segments("光荣和ω-force") == ["光", "荣", "和", "ωforce"]


@pytest.mark.parametrize("text, words", [
    ("u.s", ["u.s"]), ("v2.0", ["v2.0"]), ("getchu.com", ["getchu.com"]),   # inner periods stay in the word
    ("don't", ["do", "n't"]), ("it's", ["it", "'s"]),                      # contractions split off
    ("50％", ["50％"]), ("20℃", ["20℃"]), ("a—b", ["a—b"]), ("a．b", ["a．b"]),  # non-ASCII symbols stay glued
    ('"quoted"', ["``", "quoted", "''"]),                                  # ASCII quotes become `` and ''
    # the sentence split: "left" is no abbreviation, so "left." ends a sentence and its period stands alone
    ("he left. she came.", ["he", "left", ".", "she", "came", "."]),
    ("abc. def", ["abc", ".", "def"]),
    # "u.s" and "st" are in Punkt's English abbreviations, "a." an initial before a lowercase word: no break
    ("the u.s. army", ["the", "u.s.", "army"]), ("st. paul", ["st.", "paul"]),
    ("henry a. walsh", ["henry", "a.", "walsh"]),
])
def test_non_chinese_runs_split_as_nltk_word_tokenize(text, words):
    assert english_words(text) == words


def test_f1_counts_words_with_inner_periods_once():
    # gold "u.s.a." -> [u.s.a, .] (a sentence's last period splits off), prediction [u.s.a]:
    # common run 1 -> P = 1, R = 1/2, F1 = 2/3 (splitting at every period would give 10/11)
    assert cmrc_f1_one(["U.S.A."], "u.s.a") == pytest.approx(2 / 3)
    # gold [美, 国, u.s, .] (4), prediction [美, 国, u.s] (3): common run 3 -> P = 1, R = 3/4, F1 = 6/7
    assert cmrc_f1_one(["美国U.S."], "美国u.s") == pytest.approx(6 / 7)


def test_longest_common_run_is_contiguous():
    assert longest_common_run(list("abcxde"), list("zbcdey")) == 2   # "bc" (or "de"), not "bcde"
    assert longest_common_run([], list("abc")) == 0


def test_exact_match():
    assert cmrc_em_one(["战国无双3"], "《战国无双3》") == 1.0        # 《》 removed before comparing
    assert cmrc_em_one(["Hello World"], "hello，world") == 0.0      # "hello world" != "helloworld"
    assert cmrc_em_one(["上海", "北京"], " 北京 ") == 1.0            # any gold answer; outer spaces stripped
    assert cmrc_em_one(["北京大学"], "北京") == 0.0


def test_f1_on_longest_common_substring():
    # gold 北/京/大/学 (4), prediction 北/京 (2): common run 2 -> P = 1, R = 1/2, F1 = 2*1*0.5/1.5 = 2/3
    assert cmrc_f1_one(["北京大学"], "北京") == pytest.approx(2 / 3)
    # 7 and 7 segments, common run 北京天安门 = 5 -> P = R = 5/7 -> F1 = 5/7
    assert cmrc_f1_one(["我爱北京天安门"], "北京天安门广场") == pytest.approx(5 / 7)
    # gold [iphone, 6, plus, 发, 布] (5), prediction [iphone, 6, 发, 布] (4); the longest run is 2
    # ([iphone, 6] or [发, 布]): P = 2/4, R = 2/5, F1 = 2*0.5*0.4/0.9 = 4/9
    assert cmrc_f1_one(["iPhone 6 Plus发布"], "iphone 6发布") == pytest.approx(4 / 9)
    # the best gold answer counts: max(2/3, 1) = 1
    assert cmrc_f1_one(["北京大学", "北京"], "北京") == 1.0
    assert cmrc_f1_one(["北京"], "上海") == 0.0
    assert cmrc_f1_one(["北京"], "") == 0.0


def test_cmrc2018_averages_over_questions_and_missing_scores_zero():
    golds = [["北京大学"], ["我爱北京天安门"], ["上海", "北京"], ["长江"]]
    preds = ["北京", "北京天安门广场", "北京", None]
    # F1: (2/3 + 5/7 + 1 + 0) / 4 = (14/21 + 15/21 + 21/21) / 4 = (50/21) / 4 = 25/42
    assert cmrc2018_f1(golds, preds) == pytest.approx(25 / 42)
    # EM: only the third question matches exactly -> 1/4
    assert cmrc2018_em(golds, preds) == pytest.approx(0.25)
    assert METRICS["cmrc2018_em"] is cmrc2018_em and METRICS["cmrc2018_f1"] is cmrc2018_f1
    with pytest.raises(ValueError, match="4 questions but 3 predictions"):
        cmrc2018_f1(golds, preds[:3])


def test_cluener_counts_entity_strings_per_sentence_and_averages_types():
    golds = [
        {"name": {"张三": [[0, 1]]}, "address": {"北京": [[3, 4]]}},
        {"name": {"李四": [[0, 1]], "王五": [[3, 4]]}},
        {"company": {"腾讯": [[0, 1]]}},
    ]
    preds = [
        {"name": {"张三": [[0, 1]]}, "address": {"北京市": [[3, 5]]}},
        {"name": {"李四": [[5, 6]]}, "company": {"腾讯": [[8, 9]]}},   # 李四 at another place still counts
        {},
    ]
    counts = cluener_type_scores(golds, preds)
    assert counts["name"] == (2, 0, 1)      # 张三, 李四 found; 王五 missed
    assert counts["address"] == (0, 1, 1)   # 北京市 is not 北京
    assert counts["company"] == (0, 1, 1)   # predicted in sentence 2, gold in sentence 3
    assert counts["book"] == (0, 0, 0)
    # name F1 = 2*2/(2*2+0+1) = 0.8; address 0; company 0; the 7 types never seen are left out
    assert cluener_f1(golds, preds) == pytest.approx((0.8 + 0 + 0) / 3)
    assert METRICS["cluener_f1"] is cluener_f1


def test_cluener_gold_as_prediction_is_perfect_and_positions_do_not_matter():
    golds = [{"name": {"张三": [[0, 1], [5, 6]]}, "game": {"星际": [[8, 9]]}}]
    assert cluener_f1(golds, golds) == 1.0
    # one entity string per sentence: 张三 predicted at one of its two places is still one hit
    assert cluener_f1(golds, [{"name": {"张三": [[0, 1]]}, "game": {"星际": [[8, 9]]}}]) == 1.0


def test_cluener_all_ten_types_macro_average():
    types = ["address", "book", "company", "game", "government", "movie", "name", "organization",
             "position", "scene"]
    golds = [{t: {f"{t}实体": [[0, 3]]} for t in types}]
    preds = [{t: {f"{t}实体": [[0, 3]]} for t in types[:5]}]   # half the types found, none wrong
    # five types F1 = 1, five types F1 = 0 -> 0.5
    assert cluener_f1(golds, preds) == pytest.approx(0.5)
    # a type outside the ten is not scored (the official script only reads the ten)
    assert cluener_f1(golds, [dict(golds[0], person={"x": [[0, 0]]})]) == 1.0


# --- CMRC2018 against the official evaluator (cmrc2018_evaluate.py, "v5 - special") on the dev set ----------
OFFICIAL_PUNCTUATION = ['-', ':', '_', '*', '^', '/', '\\', '~', '`', '+', '=', '，', '。', '：', '？', '！', '“',
                        '”', '；', '’', '《', '》', '……', '·', '、', '「', '」', '（', '）', '－', '～', '『', '』']


def official_scores(word_tokenize):
    """The official script's F1 and EM of one question, its rules restated step by step (mixed_segmentation
    with rm_punc, find_lcs, calc_f1_score, remove_punctuation, calc_em_score), words from ``word_tokenize``."""

    def segments(text):
        out, run = [], ""
        for char in str(text).lower().strip():
            if char in OFFICIAL_PUNCTUATION:
                continue
            if re.search(r"[\u4e00-\u9fa5]", char):
                if run != "":
                    out.extend(word_tokenize(run))
                    run = ""
                out.append(char)
            else:
                run += char
        return out + (word_tokenize(run) if run != "" else [])

    def lcs_length(a, b):
        table, best = [[0] * (len(b) + 1) for _ in range(len(a) + 1)], 0
        for i in range(len(a)):
            for j in range(len(b)):
                if a[i] == b[j]:
                    table[i + 1][j + 1] = table[i][j] + 1
                    best = max(best, table[i + 1][j + 1])
        return best

    def f1(answers, prediction):
        scores = []
        for answer in answers:
            gold, pred = segments(answer), segments(prediction)
            common = lcs_length(gold, pred)
            if common == 0:
                scores.append(0)
                continue
            precision, recall = common / len(pred), common / len(gold)
            scores.append(2 * precision * recall / (precision + recall))
        return max(scores)

    def strip(text):
        return "".join(c for c in str(text).lower().strip() if c not in OFFICIAL_PUNCTUATION)

    def em(answers, prediction):
        return int(any(strip(a) == strip(prediction) for a in answers))

    return f1, em


@pytest.fixture
def nltk_word_tokenize(tmp_path, monkeypatch):
    """The real ``nltk.word_tokenize``: it loads tokenizers/punkt/PY3/english.pickle, written here from the
    English Punkt parameters (nltk 3.5 unpickles a PunktSentenceTokenizer; no download)."""
    import nltk
    import punkt
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    english, params = punkt.load_model("english"), PunktParameters()
    params.abbrev_types, params.collocations = set(english.abbrev_types), set(english.collocations)
    params.sent_starters = set(english.sent_starters)
    params.ortho_context = collections.defaultdict(int, english.ortho_context)
    folder = tmp_path / "nltk_data" / "tokenizers" / "punkt" / "PY3"
    folder.mkdir(parents=True)
    (folder / "english.pickle").write_bytes(pickle.dumps(PunktSentenceTokenizer(params)))
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nltk_data")])
    monkeypatch.setattr(nltk.data, "_resource_cache", {})
    return nltk.word_tokenize


ENGLISH = [" the u.s. army", " don't", "it's ", " v2.0", " e.g. this one", " mr. smith", ' "quoted"', " st. paul",
           " a.d. vision", " o'neill", " can't stop", " rock 'n' roll", " u.s", " ph.d. student", " i.e.", " no. 5",
           " 3.5 km.", " (bbc)", " co., ltd.", "'s", " won't", " j. k. rowling", " new york's", " e-mail"]
PUNCTUATION = list("％℃—．.,()\"'!?;[]{}<>$#@&%…‘“”") + ["--", "..."]


def dev_prediction_sets(dev, rng):
    """Predictions for every dev question: gold, gold with moved edges, gold with English words, context
    spans around Latin text, gold with extra punctuation."""
    questions = [(p["context"], [a["text"] for a in q["answers"]], q["answers"][0]["answer_start"])
                 for article in dev["data"] for p in article["paragraphs"] for q in p["qas"]]

    def moved(context, answer, start):
        start = start if context[start:start + len(answer)] == answer else max(context.find(answer), 0)
        first = max(0, start + rng.randint(-4, 4))
        return context[first:min(len(context), max(first + 1, start + len(answer) + rng.randint(-4, 4)))]

    def latin(context, answer):
        starts = [m.start() for m in re.finditer(r"[A-Za-z][A-Za-z .'\-]{3,}", context)]
        if not starts:
            return answer
        at = rng.choice(starts)
        return context[max(0, at - rng.randint(0, 6)):at + rng.randint(5, 40)]

    def punctuated(text):
        chars = list(text)
        for _ in range(rng.randint(1, 3)):
            chars.insert(rng.randint(0, len(chars)), rng.choice(PUNCTUATION))
        return "".join(chars)

    def english(text):
        words = rng.choice(ENGLISH)
        return text + words if rng.random() < 0.5 else words.strip() + " " + text

    golds = [answers for _, answers, _ in questions]
    return golds, {
        "gold": [a[0] for a in golds],
        "gold, edges moved": [moved(c, a[0], s) for c, a, s in questions],
        "gold + English words": [english(a[0]) for a in golds],
        "context spans around Latin text": [latin(c, a[0]) for c, a, _ in questions],
        "gold + extra punctuation": [punctuated(a[0]) for a in golds],
    }


def test_cmrc2018_em_and_f1_equal_the_official_evaluator_on_dev(clue_data_dir, nltk_word_tokenize):
    dev = json.loads((clue_data_dir / "cmrc2018" / "cmrc2018_dev.json").read_text(encoding="utf-8"))
    golds, prediction_sets = dev_prediction_sets(dev, random.Random(0))
    assert len(golds) == 3219
    official_f1, official_em = official_scores(nltk_word_tokenize)
    for name, preds in prediction_sets.items():
        f1s = [official_f1(g, p) for g, p in zip(golds, preds)]
        ems = [official_em(g, p) for g, p in zip(golds, preds)]
        print(f"{name}: official F1 {100 * sum(f1s) / len(f1s):.4f} EM {100 * sum(ems) / len(ems):.4f}, "
              f"ours F1 {100 * cmrc2018_f1(golds, preds):.4f} EM {100 * cmrc2018_em(golds, preds):.4f}")
        assert [cmrc_f1_one(g, p) for g, p in zip(golds, preds)] == f1s, name   # per question, exactly
        assert [cmrc_em_one(g, p) for g, p in zip(golds, preds)] == ems, name
