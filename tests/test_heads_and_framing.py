"""Heads and framing: GlobalPointer against bert4keras, the losses on known values, the character mapping,
cmrc2018 windows, cluener encoding and decoding, the chid contexts and assignment, and every head built on
an encoder of its own family reading its sizes from ``encoder.config``."""

import json
import math

import numpy as np
import pytest

from bert4keras_oracle import run_bert4keras
from clue import heads, multiple_choice, ner, predictions, reading
from clue.models import build_transformer_model
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
    layer = heads.GlobalPointer(heads=3, head_size=8)
    layer(x, mask)
    kernel, bias = (w.numpy() for w in layer.dense.weights)
    kernel, bias = rng.normal(size=kernel.shape) * 0.3, rng.normal(size=bias.shape) * 0.1
    layer.dense.set_weights([kernel, bias])
    ours = np.asarray(layer(x, mask))
    y = (rng.random(ours.shape) < 0.1) & (ours > heads.NEG / 2)          # gold spans at allowed pairs only
    (tmp_path / "in.json").write_text(json.dumps({"x": x.tolist(), "mask": mask.tolist(), "kernel": kernel.tolist(),
                                                  "bias": bias.tolist(), "y": y.astype(int).tolist()}))
    run_bert4keras(ORACLE, tmp_path / "in.json", tmp_path / "out.json")
    ref = json.loads((tmp_path / "out.json").read_text())
    finite = np.array(ref["finite"])
    # same allowed pairs (padding and end < start excluded) with the same scores
    np.testing.assert_array_equal(finite, ours > heads.NEG / 2)
    np.testing.assert_allclose(ours[finite], np.array(ref["scores"])[finite], rtol=1e-4, atol=1e-5)
    loss = np.asarray(heads.multilabel_crossentropy(y.reshape(2, 3, -1).astype("float32"), ours.reshape(2, 3, -1)))
    np.testing.assert_allclose(loss, ref["loss"], rtol=1e-5)


EFFICIENT_ORACLE = r"""
import json, sys, types
import numpy as np
from bert4keras.backend import K, multilabel_categorical_crossentropy
from bert4keras.layers import EfficientGlobalPointer
from bert4keras.models import RoFormerV2
data = json.load(open(sys.argv[1]))
x, mask, y = (np.array(data[k], dtype="float32") for k in ("x", "mask", "y"))
out = {}
for use_bias in (False, True):
    layer = EfficientGlobalPointer(heads=3, head_size=8, use_bias=use_bias)
    layer(K.constant(x), mask=K.constant(mask))
    layer.set_weights([np.array(w, "float32") for w in data["weights"][str(use_bias)]])
    scores = K.eval(layer(K.constant(x), mask=K.constant(mask)))
    # RoFormerV2's clue/cluener.py loss: (batch * heads) rows, the mean of the multi-label loss
    rows = K.eval(multilabel_categorical_crossentropy(K.constant(y.reshape(6, -1)), K.constant(scores.reshape(6, -1))))
    out[str(use_bias)] = {"scores": np.where(np.isfinite(scores), scores, -1.0).tolist(),
                          "finite": np.isfinite(scores).tolist(), "rows": rows.tolist(), "loss": float(rows.mean())}
# RoFormerV2's own initializer, as the scripts' kernel_initializer=base.initializer calls it (12 layers)
samples = {str(shape): K.eval(RoFormerV2.initializer(types.SimpleNamespace(num_hidden_layers=12), shape))
           for shape in data["shapes"]}
out["init"] = {k: [float(v.std()), float(np.abs(v).max())] for k, v in samples.items()}
json.dump(out, open(sys.argv[2], "w"))
"""


def test_efficient_global_pointer_its_loss_and_roformer_v2_init_match_bert4keras(tmp_path):
    import keras

    from clue.layers import RoFormerV2Initializer

    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 7, 16)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]])
    ours, weights = {}, {}
    for use_bias in (False, True):
        layer = heads.EfficientGlobalPointer(heads=3, head_size=8, use_bias=use_bias)
        layer(x, mask)
        weights[str(use_bias)] = [rng.normal(size=w.shape).tolist() for w in layer.weights]   # dense, then bias_dense
        layer.set_weights([np.array(w) for w in weights[str(use_bias)]])
        ours[str(use_bias)] = np.asarray(layer(x, mask))
    y = ((rng.random(ours["False"].shape) < 0.1) & (ours["False"] > heads.NEG / 2)).astype("float32")
    shapes = [[768, 64], [128, 400], [4, 4096]]          # fan-in 768, 128, and 4096 (first dimension under 10)
    (tmp_path / "in.json").write_text(json.dumps({"x": x.tolist(), "mask": mask.tolist(), "y": y.tolist(),
                                                  "weights": weights, "shapes": shapes}))
    run_bert4keras(EFFICIENT_ORACLE, tmp_path / "in.json", tmp_path / "out.json")
    ref = json.loads((tmp_path / "out.json").read_text())
    for use_bias in ("False", "True"):
        finite = np.array(ref[use_bias]["finite"])
        np.testing.assert_array_equal(finite, ours[use_bias] > heads.NEG / 2)   # same masked pairs
        gap = np.abs(ours[use_bias][finite] - np.array(ref[use_bias]["scores"])[finite]).max()
        print(f"EfficientGlobalPointer use_bias={use_bias}: max |score - bert4keras| {gap:.2e}")
        assert gap <= 1e-5
    rows = np.asarray(heads.multilabel_crossentropy(y.reshape(6, -1), ours["False"].reshape(6, -1)))
    loss = float(keras.ops.mean(heads.span_multilabel_crossentropy(y, ours["False"])))
    print(f"multi-label loss {loss:.6f} vs bert4keras {ref['False']['loss']:.6f}")
    np.testing.assert_allclose(rows, ref["False"]["rows"], rtol=1e-6, atol=1e-5)
    assert abs(loss - ref["False"]["loss"]) <= 1e-5
    # RoFormerV2's initializer: std 1 / sqrt(fan_in) / sqrt(12) after truncation at two deviations
    for shape in shapes:
        fan_in = shape[1] if shape[0] < 10 else shape[0]
        sample = np.asarray(RoFormerV2Initializer(12, seed=0)(tuple(shape)))
        theirs_std, theirs_max = ref["init"][str(shape)]
        target = 1 / np.sqrt(fan_in) / np.sqrt(12)
        assert sample.std() == pytest.approx(target, rel=0.03) and theirs_std == pytest.approx(target, rel=0.03)
        assert np.abs(sample).max() <= 2 * 1.13684723 * target and theirs_max <= 2 * 1.13684723 * target


def test_heads_follow_the_encoder_family():
    from clue.layers import RoFormerV2Initializer
    from clue.models import build_transformer_model

    config = dict(vocab_size=50, hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32)
    bert = heads.span_scorer(build_transformer_model(config=config, model="bert"), heads=4, seed=0)
    assert type(bert.get_layer("global_pointer")) is heads.GlobalPointer
    v2 = heads.span_scorer(build_transformer_model(config=config, model="roformer_v2"), heads=4, seed=0,
                           efficient=True)
    pointer = v2.get_layer("global_pointer")
    assert type(pointer) is heads.EfficientGlobalPointer
    assert [tuple(w.shape) for w in pointer.weights] == [(16, 16), (16, 8)]   # 2 x head_size, 2 x heads
    assert isinstance(pointer.kernel_initializer, RoFormerV2Initializer) and pointer.kernel_initializer.num_layers == 3
    # one query and key for all heads: 16*16 + 16*8 weights, against 16*64 for 4 GlobalPointer heads
    assert pointer.count_params() == 384 and bert.get_layer("global_pointer").count_params() == 1024
    out = np.asarray(v2.predict([np.array([[2, 5, 6, 3]]), np.zeros((1, 4)), np.array([[0, 1, 1, 0]])], verbose=0))
    assert out.shape == (1, 4, 4, 4) and np.isfinite(out[0, :, 1, 2]).all() and (out[0, :, 2, 1] == heads.NEG).all()
    # the classification and multiple-choice heads too: RoFormerV2's initializer, the encoder's std for BERT
    for family in ("bert", "roformer_v2"):
        encoder = build_transformer_model(config=config, model=family)
        kernels = [heads.classifier(encoder, 3, seed=0).get_layer("classifier").kernel_initializer,
                   heads.choice_scorer(encoder, 4, seed=0).get_layer("choice_score").kernel_initializer]
        for init in kernels:
            if family == "bert":
                assert type(init).__name__ == "TruncatedNormal" and init.stddev == 0.02
            else:
                assert isinstance(init, RoFormerV2Initializer) and init.num_layers == 3


def test_multilabel_loss_by_hand():
    # positives {2}, negatives {-1, 0.5}: log(1 + e^-1 + e^0.5) + log(1 + e^-2)
    y_true = np.array([[0.0, 0.0, 1.0]])
    y_pred = np.array([[-1.0, 0.5, 2.0]])
    expected = math.log(1 + math.exp(-1) + math.exp(0.5)) + math.log(1 + math.exp(-2))
    assert float(heads.multilabel_crossentropy(y_true, y_pred)[0]) == pytest.approx(expected, rel=1e-6)
    # a masked pair (-1e12) adds nothing
    masked = np.array([[-1.0, 0.5, 2.0, heads.NEG]])
    assert float(heads.multilabel_crossentropy(np.array([[0.0, 0, 1, 0]]), masked)[0]) == pytest.approx(expected)


def test_span_crossentropy_is_softmax_over_all_pairs():
    scores = np.full((1, 1, 3, 3), heads.NEG, dtype="float32")
    scores[0, 0, 0, 0], scores[0, 0, 1, 2], scores[0, 0, 2, 2] = 0.0, 2.0, 1.0
    loss = float(heads.span_crossentropy(np.array([[1, 2]]), scores)[0])
    # -log(e^2 / (e^0 + e^2 + e^1))
    assert loss == pytest.approx(-2 + math.log(1 + math.e ** 2 + math.e), rel=1e-6)


def test_char_spans_and_token_span(tokenizer):
    text = "Apple公司 在2020年"
    ids, where = tokenizer.char_spans(text)
    assert len(ids) == len(where) == 13
    # each token's characters in the original text (case kept); latin words and numbers split by character
    assert [text[a:b + 1] for a, b in where] == ["A", "p", "p", "l", "e", "公", "司", "在", "2", "0", "2", "0", "年"]
    assert reading.token_span(where, 5, 6) == (5, 6)          # 公司
    assert reading.token_span(where, 6, 8) == (6, 7)          # 司, the space (no token), 在
    assert reading.token_span(where, 7, 7) is None            # the space alone
    assert tokenizer.char_spans(text, maxlen=3)[1] == [(0, 0), (1, 1), (2, 2)]


def test_top_spans_skip_cls_and_masked_pairs():
    scores = np.full((4, 4), heads.NEG)
    scores[0, 0] = 9.0          # [CLS]: "no answer here", never an answer at prediction
    scores[1, 2], scores[2, 3], scores[1, 1], scores[3, 3] = 3.0, 1.0, 3.0, -2.0
    # best first, ties in row-major order; the masked pairs (NEG) are not spans at all
    assert reading.top_spans(scores) == [(1, 1, 3.0), (1, 2, 3.0), (2, 3, 1.0), (3, 3, -2.0)]
    assert reading.top_spans(scores, k=2) == [(1, 1, 3.0), (1, 2, 3.0)]


def test_assign_gives_distinct_candidates():
    probs = np.array([[0.6, 0.3, 0.1],
                      [0.7, 0.2, 0.1]])
    # greedy argmax would give both blanks candidate 0; the best distinct pair is (1, 0):
    # log .3 + log .7 = -1.561 > log .6 + log .2 = -2.120
    assert multiple_choice.assign(probs) == [1, 0]


def test_blank_contexts_mask_other_blanks_and_centre_the_window(tokenizer):
    passage = "甲乙丙#idiom000001#丁戊#idiom000002#己庚辛壬癸"
    contexts = multiple_choice.blank_contexts(tokenizer, passage, budget=64)
    mask = tokenizer.token_to_id("[MASK]")
    first = tokenizer.ids_to_tokens(contexts["#idiom000001#"])
    assert first == ["甲", "乙", "丙", "[MASK]", "丁", "戊", "[MASK]", "[MASK]", "[MASK]", "[MASK]",
                     "己", "庚", "辛", "壬", "癸"]
    assert contexts["#idiom000002#"].count(mask) == 5     # this blank's marker + 4 for the other blank
    short = multiple_choice.blank_contexts(tokenizer, passage, budget=5)["#idiom000002#"]
    # 4 tokens of room around the marker: 2 on the left, 2 on the right
    assert tokenizer.ids_to_tokens(short) == ["丁", "戊", "[MASK]", "己", "庚"]


def test_chid_roformer_v2_framing_token_ids(vocab_path):
    from clue.tokenizer import Tokenizer

    passage = "甲乙#idiom000001#丙#idiom000002#丁"
    # the other blank becomes "_____"; with room for both sides nothing is cut
    assert multiple_choice.blank_sides(passage, "#idiom000001#", 56) == ("甲乙", "丙_____丁")
    assert multiple_choice.blank_sides(passage, "#idiom000002#", 56) == ("甲乙_____丙", "丁")
    # 2 + 7 = 9 characters over a budget of 8: the longer right side loses its last character
    assert multiple_choice.blank_sides(passage, "#idiom000001#", 8) == ("甲乙", "丙_____")
    # tie 3 / 3 over 4: the left loses its first character, then the now longer right its last
    assert multiple_choice.blank_sides("甲乙丙#idiom000001#丁戊己", "#idiom000001#", 4) == ("乙丙", "丁戊")
    # ids are the lines of the vocabulary file: [CLS] 101, [SEP] 102, _ 142, 甲 4508, 乙 734, 丙 688,
    # 丁 672, 一 671, 心 2552, 意 2692, 三 676, 二 753
    vocab = {token: i for i, token in enumerate(vocab_path.read_text(encoding="utf-8").split("\n"))}
    tokenizer = Tokenizer(str(vocab_path))
    framed = multiple_choice.idiom_between(tokenizer, ["一心一意", "三心二意"], "甲乙", "丙_____丁")
    assert framed == [[vocab[t] for t in f"[CLS] 甲 乙 [SEP] {' '.join(idiom)} [SEP] 丙 _ _ _ _ _ 丁 [SEP]".split()]
                      for idiom in ("一心一意", "三心二意")]
    assert framed[0][:4] == [101, 4508, 734, 102] and framed[0][9:11] == [688, 142]


def test_locate_answer_repairs_a_shifted_start():
    context = "甲乙丙丁甲乙"
    assert reading.locate_answer(context, "丙丁", 2) == (2, 3)
    assert reading.locate_answer(context, "丙丁", 3) == (2, 3)        # off by one, as in a few CMRC records
    assert reading.locate_answer(context, "甲乙", 5) == (4, 5)        # the occurrence nearest to the start
    assert reading.locate_answer(context, "戊", 0) is None
    assert reading.locate_answer(context, "乙丙", -1) == (1, 2)


def test_cmrc_windows_slide_and_point_at_cls_without_the_answer(tokenizer):
    context = "".join(chr(0x4E00 + i) for i in range(39))       # 39 distinct characters, one token each
    question = "问题"                                              # [CLS] 问 题 [SEP]: 4 tokens
    windows = reading.question_windows(tokenizer, question, context, answer=(20, 22), maxlen=20, stride=8)
    # room per window: 20 - 4 - 1 = 15 context tokens; windows start at 0, 8, 16, 24 (24 + 15 >= 39)
    assert [w.first for w in windows] == [0, 8, 16, 24]
    assert all(len(w.token_ids) <= 20 for w in windows)
    # the answer (tokens 20..22) lies in the windows starting at 8 and 16 only
    assert [w.label for w in windows] == [(0, 0), (4 + 12, 4 + 14), (4 + 4, 4 + 6), (0, 0)]
    for w in windows:
        assert w.span_mask[:5] == [1, 0, 0, 0, 1]               # [CLS] allowed, question and [SEP] not
        assert w.span_mask[-1] == 0 and len(w.span_mask) == len(w.token_ids)
        if w.label != (0, 0):
            assert w.chars(*w.label) == (20, 22)


def test_cmrc_windows_never_skip_tokens_when_the_window_is_shorter_than_the_stride(tokenizer):
    context = "".join(chr(0x4E00 + i) for i in range(30))
    windows = reading.question_windows(tokenizer, "问题", context, maxlen=15, stride=128)
    # room 15 - 4 - 1 = 10 tokens: windows at 0, 10, 20 cover all 30 tokens
    assert [w.first for w in windows] == [0, 10, 20]


def test_best_answer_over_the_windows_of_each_question(tokenizer):
    records = [{"id": "q0", "context": "".join(chr(0x4E00 + i) for i in range(30))}, {"id": "q1", "context": "甲乙丙"}]
    windows = (reading.question_windows(tokenizer, "问题", records[0]["context"], maxlen=15, stride=128, index=0)
               + reading.question_windows(tokenizer, "问题", records[1]["context"], maxlen=15, index=1))
    # question 0: window 1 (context tokens 10..19) scores 5 at its positions 4..5, window 2 only 3;
    # question 1's window lists no span
    tops = [[(4, 4, 1.0)], [(4, 5, 5.0)], [(6, 6, 3.0)], []]
    found = reading.nbest(windows, tops, 2)
    assert predictions.Answers.of(records, *found).decode() == [records[0]["context"][10:12], ""]


def test_nbest_merges_windows_and_bounds_the_rest(tokenizer):
    context = "".join(chr(0x4E00 + i) for i in range(11))
    windows = reading.question_windows(tokenizer, "问题", context, maxlen=12, stride=4)
    assert [w.first for w in windows] == [0, 4]               # 7 context tokens each, from position 4
    # characters 4..5 are in both windows (positions 8..9 of the first, 4..5 of the second): best window wins
    tops = [[(8, 9, 2.0), (4, 4, 1.5), (5, 6, 0.5)], [(4, 5, 3.0), (6, 6, 1.0)]]
    starts, ends, scores, bound = reading.nbest(windows, tops, 1, k=3)
    assert list(zip(starts[0].tolist(), ends[0].tolist())) == [(4, 5), (0, 0), (6, 6)]
    assert scores[0].tolist() == [3.0, 1.5, 1.0] and bound[0] == 1.0     # three listed: the third bounds
    _, _, scores, bound = reading.nbest(windows, tops, 1, k=5)
    assert scores[0].tolist() == [3.0, 1.5, 1.0, 0.5, -np.inf] and bound[0] == -np.inf   # all listed


def test_ner_sentence_and_decode_round_trip(tokenizer):
    text = "张三在北京工作"
    types = ("address", "name")
    example = ner.sentence(tokenizer, text, [("name", 0, 1), ("address", 3, 4)], types)
    assert example.gold == [(1, 1, 2), (0, 4, 5)]                # token positions count [CLS]
    # the baseline's mask (bert4keras: Keras's padding mask) keeps [CLS] and [SEP] as negatives in the loss
    assert example.span_mask == [1] * len(example.token_ids) == [int(t != 0) for t in example.token_ids]
    target = ner.targets(example, 2, len(example.token_ids))
    assert target.sum() == 2 and target[1, 1, 2] == 1
    scores = np.where(target > 0, 3.0, -3.0)
    scores[1, 6, 7] = 1.0                                           # 工作 as a name, also above 0
    scores[0, 0, 0] = scores[1, 0, 2] = scores[0, 7, 8] = 2.0      # on [CLS] or [SEP]: never an entity
    scores[:, 1:, 0] = scores[:, 8, :8] = heads.NEG                 # end < start: masked, as the head does
    table = ner.pointer_table(scores)                               # the 7 text tokens' 28 pairs per type
    assert table.shape == (2, 28) and (table > 0).sum() == 3
    decoded = predictions.Entities.of([{"text": text}], [example], [table], types).decode()[0]
    assert decoded == {"name": {"张三": [[0, 1]], "工作": [[5, 6]]}, "address": {"北京": [[3, 4]]}}
    for kind, entities in decoded.items():
        for entity, places in entities.items():
            assert all(text[a:b + 1] == entity for a, b in places)


@pytest.mark.parametrize("family", ["bert", "roformer", "roformer_v2"])
def test_heads_take_their_sizes_from_the_encoder(family):
    config = dict(vocab_size=40, hidden_size=24, num_hidden_layers=1, num_attention_heads=3, intermediate_size=32,
                  initializer_range=0.5)
    encoder = build_transformer_model(config=config, model=family)
    scorer = heads.span_scorer(encoder, heads=2, seed=0)
    pointer = scorer.get_layer("global_pointer")
    assert pointer.head_size == 8 and pointer.dense.kernel.shape == (24, 2 * 2 * 8)
    token_ids = np.array([[1, 5, 6, 2, 0]])
    scores = np.asarray(scorer.predict_on_batch([token_ids, np.zeros_like(token_ids), np.array([[0, 1, 1, 0, 0]])]))
    assert scores.shape == (1, 2, 5, 5) and (scores[0, :, 1:3, 1:3][:, np.tril_indices(2, -1)[0],
                                                                    np.tril_indices(2, -1)[1]] == heads.NEG).all()
    kernels = [heads.classifier(encoder, 3, seed=0).get_layer("classifier").kernel,
               heads.choice_scorer(encoder, 4, seed=0).get_layer("choice_score").kernel, pointer.dense.kernel]
    if family != "roformer_v2":   # the encoder's initializer range (0.5, not the default 0.02); RoFormerV2: its own
        assert all(0.2 < float(np.std(k)) < 0.5 and float(np.abs(k).max()) > 0.1 for k in kernels)
