"""The official CMRC2018 EM/F1 and CLUENER scores on hand-made cases, expected values worked out by hand."""

import pytest

from clue.metrics import (
    METRICS, cluener_f1, cluener_type_scores, cmrc2018_em, cmrc2018_f1, cmrc_em_one, cmrc_f1_one,
    cmrc_segments, longest_common_run,
)


def test_segments_split_chinese_by_character_and_other_text_by_words():
    # "iPhone 6 Plus" is one non-Chinese run -> three words; 发/布 are single characters
    assert cmrc_segments("iPhone 6 Plus发布") == ["iphone", "6", "plus", "发", "布"]
    # 《》 and "，" are official punctuation: dropped; "3.5" stays one number
    assert cmrc_segments("《三体》，3.5亿") == ["三", "体", "3.5", "亿"]
    # a dropped "-" does not end the run, so "ω-force" becomes the single word "ωforce" (as the official)
    assert cmrc_segments("光荣和ω-force") == ["光", "荣", "和", "ωforce"]


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
