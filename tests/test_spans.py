"""Span heads and decoding: GlobalPointer against bert4keras, the losses on known values, the character
mapping, cmrc2018 windows, cluener decoding and the chid assignment."""

import json
import math

import numpy as np
import pytest

from bert4keras_oracle import run_bert4keras
from clue import choices, predictions, spans
from clue.tokenizer import Tokenizer, builtin_vocab


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer(builtin_vocab())


ORACLE = r"""
import json, sys
import numpy as np
from bert4keras.backend import K, multilabel_categorical_crossentropy
from bert4keras.layers import GlobalPointer
data = json.load(open(sys.argv[1]))
x = np.array(data["x"], dtype="float32")
mask = np.array(data["mask"], dtype="bool")
layer = GlobalPointer(heads=3, head_size=8, use_bias=True)
out = layer(K.constant(x), mask=K.constant(mask))
layer.set_weights([np.array(data["kernel"], "float32"), np.array(data["bias"], "float32")])
out = K.eval(layer(K.constant(x), mask=K.constant(mask)))
y = np.array(data["y"], dtype="float32")
loss = K.eval(multilabel_categorical_crossentropy(K.constant(y.reshape(2, 3, -1)), K.constant(out.reshape(2, 3, -1))))
json.dump({"scores": np.where(np.isfinite(out), out, -1.0).tolist(), "finite": np.isfinite(out).tolist(),
           "loss": loss.tolist()}, open(sys.argv[2], "w"))
"""


def test_global_pointer_and_multilabel_loss_match_bert4keras(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 7, 16)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]])
    layer = spans.GlobalPointer(heads=3, head_size=8)
    layer(x, mask)
    kernel, bias = (w.numpy() for w in layer.dense.weights)
    kernel, bias = rng.normal(size=kernel.shape) * 0.3, rng.normal(size=bias.shape) * 0.1
    layer.dense.set_weights([kernel, bias])
    ours = np.asarray(layer(x, mask))
    y = (rng.random(ours.shape) < 0.1) & (ours > spans.NEG / 2)          # gold spans at allowed pairs only
    (tmp_path / "in.json").write_text(json.dumps({"x": x.tolist(), "mask": mask.tolist(), "kernel": kernel.tolist(),
                                                  "bias": bias.tolist(), "y": y.astype(int).tolist()}))
    run_bert4keras(ORACLE, tmp_path / "in.json", tmp_path / "out.json")
    ref = json.loads((tmp_path / "out.json").read_text())
    finite = np.array(ref["finite"])
    # same allowed pairs (padding and end < start excluded) with the same scores
    np.testing.assert_array_equal(finite, ours > spans.NEG / 2)
    np.testing.assert_allclose(ours[finite], np.array(ref["scores"])[finite], rtol=1e-4, atol=1e-5)
    loss = np.asarray(spans.multilabel_crossentropy(y.reshape(2, 3, -1).astype("float32"), ours.reshape(2, 3, -1)))
    np.testing.assert_allclose(loss, ref["loss"], rtol=1e-5)


def test_multilabel_loss_by_hand():
    # positives {2}, negatives {-1, 0.5}: log(1 + e^-1 + e^0.5) + log(1 + e^-2)
    y_true = np.array([[0.0, 0.0, 1.0]])
    y_pred = np.array([[-1.0, 0.5, 2.0]])
    expected = math.log(1 + math.exp(-1) + math.exp(0.5)) + math.log(1 + math.exp(-2))
    assert float(spans.multilabel_crossentropy(y_true, y_pred)[0]) == pytest.approx(expected, rel=1e-6)
    # a masked pair (-1e12) adds nothing
    masked = np.array([[-1.0, 0.5, 2.0, spans.NEG]])
    assert float(spans.multilabel_crossentropy(np.array([[0.0, 0, 1, 0]]), masked)[0]) == pytest.approx(expected)


def test_span_crossentropy_is_softmax_over_all_pairs():
    scores = np.full((1, 1, 3, 3), spans.NEG, dtype="float32")
    scores[0, 0, 0, 0], scores[0, 0, 1, 2], scores[0, 0, 2, 2] = 0.0, 2.0, 1.0
    loss = float(spans.span_crossentropy(np.array([[1, 2]]), scores)[0])
    # -log(e^2 / (e^0 + e^2 + e^1))
    assert loss == pytest.approx(-2 + math.log(1 + math.e ** 2 + math.e), rel=1e-6)


def test_char_spans_and_token_span(tokenizer):
    text = "Apple公司 在2020年"
    ids, where = spans.char_spans(tokenizer, text)
    assert len(ids) == len(where) == 13
    # each token's characters in the original text (case kept); latin words and numbers split by character
    assert [text[a:b + 1] for a, b in where] == ["A", "p", "p", "l", "e", "公", "司", "在", "2", "0", "2", "0", "年"]
    assert spans.token_span(where, 5, 6) == (5, 6)          # 公司
    assert spans.token_span(where, 6, 8) == (6, 7)          # 司, the space (no token), 在
    assert spans.token_span(where, 7, 7) is None            # the space alone
    assert spans.char_spans(tokenizer, text, maxlen=3)[1] == [(0, 0), (1, 1), (2, 2)]


def test_top_spans_skip_cls_and_masked_pairs():
    scores = np.full((4, 4), spans.NEG)
    scores[0, 0] = 9.0          # [CLS]: "no answer here", never an answer at prediction
    scores[1, 2], scores[2, 3], scores[1, 1], scores[3, 3] = 3.0, 1.0, 3.0, -2.0
    # best first, ties in row-major order; the masked pairs (NEG) are not spans at all
    assert spans.top_spans(scores) == [(1, 1, 3.0), (1, 2, 3.0), (2, 3, 1.0), (3, 3, -2.0)]
    assert spans.top_spans(scores, k=2) == [(1, 1, 3.0), (1, 2, 3.0)]


def test_cmrc_nbest_merges_windows_and_bounds_the_rest(tokenizer):
    context = "".join(chr(0x4E00 + i) for i in range(11))
    windows, c_spans = spans.cmrc_windows(tokenizer, "问题", context, maxlen=12, stride=4)
    assert [w["first"] for w in windows] == [0, 4]            # 7 context tokens each, from position 4
    windows = [dict(w, question=0, c_spans=c_spans) for w in windows]
    # characters 4..5 are in both windows (positions 8..9 of the first, 4..5 of the second): best window wins
    tops = [[(8, 9, 2.0), (4, 4, 1.5), (5, 6, 0.5)], [(4, 5, 3.0), (6, 6, 1.0)]]
    starts, ends, scores, bound = spans.cmrc_nbest(windows, tops, 1, k=3)
    assert list(zip(starts[0].tolist(), ends[0].tolist())) == [(4, 5), (0, 0), (6, 6)]
    assert scores[0].tolist() == [3.0, 1.5, 1.0] and bound[0] == 1.0     # three listed: the third bounds
    _, _, scores, bound = spans.cmrc_nbest(windows, tops, 1, k=5)
    assert scores[0].tolist() == [3.0, 1.5, 1.0, 0.5, -np.inf] and bound[0] == -np.inf   # all listed


def test_assign_gives_distinct_candidates():
    probs = np.array([[0.6, 0.3, 0.1],
                      [0.7, 0.2, 0.1]])
    # greedy argmax would give both blanks candidate 0; the best distinct pair is (1, 0):
    # log .3 + log .7 = -1.561 > log .6 + log .2 = -2.120
    assert choices.assign(probs) == [1, 0]


def test_blank_contexts_mask_other_blanks_and_centre_the_window(tokenizer):
    passage = "甲乙丙#idiom000001#丁戊#idiom000002#己庚辛壬癸"
    contexts = choices.blank_contexts(tokenizer, passage, budget=64)
    mask = tokenizer.token_to_id("[MASK]")
    first = tokenizer.ids_to_tokens(contexts["#idiom000001#"])
    assert first == ["甲", "乙", "丙", "[MASK]", "丁", "戊", "[MASK]", "[MASK]", "[MASK]", "[MASK]",
                     "己", "庚", "辛", "壬", "癸"]
    assert contexts["#idiom000002#"].count(mask) == 5     # this blank's marker + 4 for the other blank
    short = choices.blank_contexts(tokenizer, passage, budget=5)["#idiom000002#"]
    # 4 tokens of room around the marker: 2 on the left, 2 on the right
    assert tokenizer.ids_to_tokens(short) == ["丁", "戊", "[MASK]", "己", "庚"]


def test_locate_answer_repairs_a_shifted_start():
    context = "甲乙丙丁甲乙"
    assert spans.locate_answer(context, "丙丁", 2) == (2, 3)
    assert spans.locate_answer(context, "丙丁", 3) == (2, 3)        # off by one, as in a few CMRC records
    assert spans.locate_answer(context, "甲乙", 5) == (4, 5)        # the occurrence nearest to the start
    assert spans.locate_answer(context, "戊", 0) is None
    assert spans.locate_answer(context, "乙丙", -1) == (1, 2)


def test_cmrc_windows_slide_and_point_at_cls_without_the_answer(tokenizer):
    context = "".join(chr(0x4E00 + i) for i in range(39))       # 39 distinct characters, one token each
    question = "问题"                                              # [CLS] 问 题 [SEP]: 4 tokens
    windows, c_spans = spans.cmrc_windows(tokenizer, question, context, answer=(20, 22), maxlen=20, stride=8)
    # room per window: 20 - 4 - 1 = 15 context tokens; windows start at 0, 8, 16, 24 (24 + 15 >= 39)
    assert [w["first"] for w in windows] == [0, 8, 16, 24]
    assert all(len(w["token_ids"]) <= 20 for w in windows)
    # the answer (tokens 20..22) lies in the windows starting at 8 and 16 only
    assert [w["label"] for w in windows] == [(0, 0), (4 + 12, 4 + 14), (4 + 4, 4 + 6), (0, 0)]
    for w in windows:
        assert w["span_mask"][:5] == [1, 0, 0, 0, 1]               # [CLS] allowed, question and [SEP] not
        assert w["span_mask"][-1] == 0 and len(w["span_mask"]) == len(w["token_ids"])
        if w["label"] != (0, 0):
            assert spans.window_chars(c_spans, w, *w["label"]) == (20, 22)


def test_cmrc_windows_never_skip_tokens_when_the_window_is_shorter_than_the_stride(tokenizer):
    context = "".join(chr(0x4E00 + i) for i in range(30))
    windows, _ = spans.cmrc_windows(tokenizer, "问题", context, maxlen=15, stride=128)
    # room 15 - 4 - 1 = 10 tokens: windows at 0, 10, 20 cover all 30 tokens
    assert [w["first"] for w in windows] == [0, 10, 20]


def test_ner_example_and_decode_round_trip(tokenizer):
    text = "张三在北京工作"
    types = ("address", "name")
    example = spans.ner_example(tokenizer, text, [("name", 0, 1), ("address", 3, 4)], types)
    assert example["gold"] == [(1, 1, 2), (0, 4, 5)]                # token positions count [CLS]
    target = spans.ner_labels(example, 2, len(example["token_ids"]))
    assert target.sum() == 2 and target[1, 1, 2] == 1
    scores = np.where(target > 0, 3.0, -3.0)
    scores[1, 6, 7] = 1.0                                           # 工作 as a name, also above 0
    scores[:, 0], scores[:, :, 0], scores[:, -1], scores[:, :, -1] = spans.NEG, spans.NEG, spans.NEG, spans.NEG
    table = spans.pointer_table(scores)                             # the 7 text tokens' 28 pairs per type
    assert table.shape == (2, 28) and (table > 0).sum() == 3
    decoded = predictions.Entities.of([{"text": text}], [example], [table], types).decode()[0]
    assert decoded == {"name": {"张三": [[0, 1]], "工作": [[5, 6]]}, "address": {"北京": [[3, 4]]}}
    for kind, entities in decoded.items():
        for entity, places in entities.items():
            assert all(text[a:b + 1] == entity for a, b in places)
