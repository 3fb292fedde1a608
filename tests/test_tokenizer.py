"""clue.tokenizer against bert4keras 0.11.5 (in a subprocess) and its own contract.

The parity test covers a deterministic sample of 25,000 distinct texts (every field of every shared CLUE
file) and 6,000 pairs at maxlen 128, plus generated texts full of the awkward cases (controls, NUL, U+FFFF,
private-use planes, astral CJK, emoji, accents, final sigma, surrogates, long words), with and without
lowercasing. scripts/tokenizer_parity.py runs the same check on every text.
"""

import random
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import tokenizer_parity  # noqa: E402
from clue.tokenizer import LUT_MIN_CHARS, SPECIALS, Tokenizer, builtin_vocab, load_vocab, truncate_lengths  # noqa: E402

AWKWARD = [
    "", " ", "\x00", "a\x00b", "\uffff", "x\ufffey", "\ufffd", "\U00100000", "\U0010fffd\U0010ffff",
    "\U000f0041 private", "中\u200b文", "a\u200db", "\ufeffBOM", "\x01\x7f\x85", "tab\there", "cr\r\nlf",
    "line\u2028sep\u2029para", "ideographic\u3000space", "nb\xa0sp", "Σ", "ΟΔΥΣΣΕΥΣ", "ΑΣ ΣΑ", "Åström",
    "\u212b", "İstanbul", "ﬁne", "ǅ", "Ⅻ", "ＡＢＣ１２３！", "café naïve", "e\u0301\u0327", "\U00020000\U0002a6df",
    "😀👍🏽", "𝐀𝐁", "\U000e0001tag", "\udc00 lone", "a" * 201, "a" * 200, "abc" * 80, "unaffable 2017年",
    "##", "[CLS]", "[unused1]", "x" + "\u0301" * 10, "ß ẞ", "ﾊﾝｶｸ", "\u0378", "一、二。三……",
]


def _random_texts(n, seed, max_len=40):
    """Texts drawn from a pool that mixes every character class the tokenizer distinguishes."""
    rng = random.Random(seed)
    pools = [
        "abcXYZ0123 .,-'", "中文字符测试你好", "，。！？、；：“”《》（）", "ＡＢＣ１２３ａｂｃ", "éèêëñüÅåİıΣσςß",
        "\u0301\u0308\u0327", "\t\n\r\x0b\x0c\x1c\x85\xa0\u2028\u2029\u3000", "\x00\x01\x7f\u200b\u200d\ufeff\ufffd",
        "\U0001f600\U0001f44d\U0001f3fd\U00020001\U0002b820\U0002ceaf", "\uffff\ufffe\U000f0000\U00100001",
        "\udc00\udfff", "가나다ㄱㅏ", "ßﬁǅⅫ",  # low surrogates only: a high-low pair would not survive JSON
    ]
    texts = []
    for _ in range(n):
        chosen = rng.sample(pools, rng.randint(1, 4))
        texts.append("".join(rng.choice(rng.choice(chosen)) for _ in range(rng.randint(0, max_len))))
    return texts


@pytest.fixture(scope="module")
def tokenizer(vocab_path):
    return Tokenizer(vocab_path)


def _check(tokenizer, texts, pairs, vocab_path):
    mismatches, n_texts, n_pairs = tokenizer_parity.compare(tokenizer, texts, pairs, vocab_path)
    shown = "\n".join(f"{kind} [{source}] {', '.join(what)}: {text!r:.120}"
                      for kind, source, text, what in mismatches[:10])
    assert not mismatches, f"{len(mismatches)} mismatches with bert4keras:\n{shown}"
    return n_texts, n_pairs


def test_parity_with_bert4keras_on_shared_texts(tokenizer, clue_data_dir, vocab_path):
    texts, pairs = tokenizer_parity.collect(clue_data_dir)
    texts = tokenizer_parity.sample(texts, 45000)
    pairs = tokenizer_parity.sample(pairs, 6000)
    assert {path.split()[0] for path, _ in texts} >= {
        str(p.relative_to(clue_data_dir)) for p in clue_data_dir.glob("*/*.json")
        if p.name not in ("cluener_predict.json",) and p.parent.name != "submit_examples"}
    generated = AWKWARD + _random_texts(3000, seed=1)
    texts += [("generated", t) for t in generated]
    rng = random.Random(2)
    pairs += [("generated", a, b, rng.randint(1, 24)) for a, b in zip(generated, reversed(generated))]
    n_texts, n_pairs = _check(tokenizer, texts, pairs, vocab_path)
    assert n_texts >= 25000 and n_pairs >= 6000


def test_parity_without_lowercasing(vocab_path):
    texts = AWKWARD + _random_texts(1500, seed=3)
    pairs = [("generated", a, b, 16) for a, b in zip(texts, texts[1:])]
    _check(Tokenizer(vocab_path, do_lower_case=False), [("generated", t) for t in texts], pairs, vocab_path)


def test_both_translation_paths_agree_with_the_plain_path(tokenizer):
    """Texts from LUT_MIN_CHARS characters go through numpy's lookup, shorter ones through str.translate."""
    texts = ["".join(_random_texts(1, seed=s, max_len=400)) * 3 for s in range(40)] + ["中文 abc\u200b " * 50]
    texts += [text[:LUT_MIN_CHARS - 1] for text in texts]
    assert {len(t) >= LUT_MIN_CHARS for t in texts} == {True, False}
    for text in texts:
        ids = tokenizer._plain_ids(text)
        assert tokenizer.encode(text) == (ids, [0] * len(ids))


def test_encode_batch_equals_encode_with_nul_and_uffff(tokenizer):
    texts = ["你好", "a\x00b", "x\uffffy", "", "中文 English 123"]
    for batch in (texts, texts[:1] + texts[3:]):
        assert tokenizer.encode_batch(batch) == [tokenizer.encode(t) for t in batch]
    pairs = tokenizer.encode_batch(texts, texts[::-1], maxlen=5)
    assert pairs == [tokenizer.encode(a, b, maxlen=5) for a, b in zip(texts, texts[::-1])]
    with pytest.raises(ValueError, match="2 first texts but 1 second"):
        tokenizer.encode_batch(["a", "b"], ["c"])


def test_encode_batch_arrays_equal_the_lists(tokenizer):
    """arrays=True gives int32 read-only views with the same ids and segments, on the id-string path, the
    plain path (NUL, U+FFFF, astral characters), with and without pairs and truncation."""
    texts = AWKWARD + _random_texts(300, seed=5) + ["中文 English 123", "你好"] * 3
    for firsts, seconds, maxlen in ((texts, None, None), (texts, None, 7), (texts, texts[::-1], 9),
                                    (texts, texts[::-1], None), (texts[-6:], texts[-6:], 128), ([], None, None),
                                    (["好"], None, None)):
        lists = tokenizer.encode_batch(firsts, seconds, maxlen)
        arrays = tokenizer.encode_batch(firsts, seconds, maxlen, arrays=True)
        assert len(arrays) == len(lists)
        for (ids, segments), (id_array, segment_array) in zip(lists, arrays):
            assert id_array.dtype == segment_array.dtype == np.int32
            assert id_array.tolist() == ids and segment_array.tolist() == segments
            assert not id_array.flags.writeable and not segment_array.flags.writeable


def test_truncation_rule(tokenizer):
    """The longer part loses tokens from just before its [SEP]; on a tie the first part does."""
    ids, segs = tokenizer.encode("一二三四五六", "七八", maxlen=8)
    assert tokenizer.ids_to_tokens(ids) == ["[CLS]", "一", "二", "三", "[SEP]", "七", "八", "[SEP]"]
    assert segs == [0] * 5 + [1] * 3
    ids, _ = tokenizer.encode("一二三", "四五六", maxlen=6)
    assert tokenizer.ids_to_tokens(ids) == ["[CLS]", "一", "[SEP]", "四", "五", "[SEP]"]
    assert tokenizer.tokenize("一二三四", maxlen=4) == ["[CLS]", "一", "二", "[SEP]"]
    assert tokenizer.encode("一二三四", maxlen=3)[0] == tokenizer.tokens_to_ids(["[CLS]", "一", "[SEP]"])
    assert truncate_lengths(7, [5, 5]) == [3, 4] and truncate_lengths(7, [2, 9]) == [2, 5]
    assert truncate_lengths(5, [3, 2, 4]) == [1, 2, 2]


def test_token_lists_rematch_decode(tokenizer):
    tokens = tokenizer.tokenize("Héllo，世界 unaffable")
    assert tokens == ["[CLS]", "hello", "，", "世", "界", "u", "##na", "##ff", "##able", "[SEP]"]
    assert tokenizer.encode(tokens)[0] == tokenizer.encode("Héllo，世界 unaffable")[0]
    mapping = tokenizer.rematch("Héllo，世界 unaffable", tokens)
    assert mapping[1] == [0, 1, 2, 3, 4] and mapping[3] == [6] and mapping[6] == [10, 11] and mapping[0] == []
    assert tokenizer.decode(tokenizer.encode("你好，world 3.5")[0]) == "你好，world 3.5"
    assert tokenizer.tokenize("a" * 201) == ["[CLS]", "a" * 201, "[SEP]"]
    assert tokenizer.encode("a" * 201)[0][1] == tokenizer.unk_id
    assert tokenizer.id_to_token(tokenizer.token_to_id("中")) == "中"
    assert tokenizer.token_to_id("no-such-token") == tokenizer.unk_id


def test_vocab_file_rules(tmp_path, vocab_path):
    vocab = load_vocab(vocab_path)
    assert len(vocab) == 21128 and vocab["[PAD]"] == 0 and vocab["[UNK]"] == 100 and vocab["[CLS]"] == 101
    assert vocab[""] == 343  # the line holding only U+2028
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello world\nhello\n", encoding="utf-8")
    assert load_vocab(path) == {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "hello": 5}
    path.write_text("[PAD]\n[CLS]\n[SEP]\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"\[UNK\]"):
        Tokenizer(path)


def test_builtin_vocab():
    vocab = builtin_vocab()
    assert vocab[:5] == list(SPECIALS) and len(vocab) == len(set(vocab))
    assert {"中", "a", "0", "，", "。", "##a", "##9"} <= set(vocab) and "A" not in vocab
    assert sum(len(t) == 1 and "\u4e00" <= t <= "\u9fff" for t in vocab) == 0x9FFF - 0x4E00 + 1
    tokenizer = Tokenizer(vocab)
    ids, segs = tokenizer.encode("今天天气不错，Hello 2024！", "是的")
    tokens = tokenizer.ids_to_tokens(ids)
    assert "[UNK]" not in tokens and tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2
    assert "h" in tokens and "##e" in tokens and tokenizer.pad_id == 0
    assert len(ids) == len(segs) and segs[-3:] == [1, 1, 1]
