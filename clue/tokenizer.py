"""BERT WordPiece tokenizer giving the same tokens, ids and character mapping as bert4keras 0.11.5.

The rules (bert4keras's ``Tokenizer``, re-implemented):
1. with ``do_lower_case``: ``str.lower()`` on the whole text, NFD, drop nonspacing marks (Mn);
2. per character: punctuation (ASCII 33-47, 58-64, 91-96, 123-126 or a Unicode P* category) and CJK
   ideographs become words of their own; ' ', \\n, \\r, \\t and Zs separate words; NUL, U+FFFD and
   Cc/Cf controls vanish; everything else is kept. Words are then split on Python whitespace (so U+2028
   separates words too);
3. greedy longest-match WordPiece with "##" continuations; a word longer than 200 characters or with no
   match stays whole and maps to [UNK];
4. ``encode`` adds [CLS]/[SEP] and, with ``maxlen``, removes tokens one at a time from just before the
   final [SEP] of the longer sequence (the first on ties) until the pair fits.

Speed: step 2 is one ``str.translate`` with a lazily filled per-character table, and step 3 is cached per
word, so the per-text Python work is a loop over words.
"""

import re
import unicodedata
from pathlib import Path

from clue.batching import truncate_lengths

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)
# Full-width and CJK punctuation that ``decode`` glues to the following text.
CJK_PUNCTUATION = (
    "＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､\u3000、〃〈〉《》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿"
    "–—‘’‛“”„‟…‧﹏﹑﹔·！？｡。"
)


def is_cjk(ch):
    code = ord(ch)
    return any(lo <= code <= hi for lo, hi in CJK_RANGES)


def is_punctuation(ch):
    code = ord(ch)
    return (33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126
            or unicodedata.category(ch).startswith("P"))


def is_space(ch):
    return ch in " \n\r\t" or unicodedata.category(ch) == "Zs"


def is_control(ch):
    return unicodedata.category(ch) in ("Cc", "Cf")


def is_dropped(ch):
    """Characters that vanish before splitting: NUL, U+FFFD and control/format characters."""
    return ch in "\x00\ufffd" or is_control(ch)


def is_special(token):
    """A bracketed token such as [CLS] (bert4keras's rule: starts with '[' and ends with ']')."""
    return bool(token) and token[0] == "[" and token[-1] == "]"


def stem(token):
    return token[2:] if token[:2] == "##" else token


def load_vocab(path):
    """token -> id from a BERT vocab.txt: the first whitespace-separated field of each line, in order.

    Lines are read with universal newlines; a line with no field (the real Chinese vocab has one holding
    only U+2028) gives the empty token. A repeated token takes the id ``len(vocab)`` as in bert4keras.
    """
    vocab = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            vocab[fields[0] if fields else line.strip()] = len(vocab)
    return vocab


def builtin_vocab():
    """The built-in character vocabulary of the ``tiny`` preset, generated here from Unicode ranges.

    [PAD] [UNK] [CLS] [SEP] [MASK]; printable ASCII (lowercase letters only, as the tokenizer lowercases);
    common CJK/full-width punctuation; the CJK Unified Ideographs block U+4E00-U+9FFF; then "##" forms of
    ASCII letters and digits so Latin words and numbers split into characters.
    """
    ascii_chars = [chr(c) for c in range(33, 127) if not chr(c).isupper()]
    punctuation = [ch for ch in dict.fromkeys(CJK_PUNCTUATION) if ch != "\u3000"]
    cjk = [chr(c) for c in range(0x4E00, 0xA000)]
    continuations = ["##" + ch for ch in ascii_chars if ch.isalnum()]
    return list(SPECIALS) + ascii_chars + punctuation + cjk + continuations


class _CharTable(dict):
    """``str.translate`` table filled on first sight of each character: isolate, separate, drop or keep."""

    def __init__(self, strip_marks):
        super().__init__()
        self.strip_marks = strip_marks

    def __missing__(self, code):
        ch = chr(code)
        if is_punctuation(ch) or is_cjk(ch):
            out = f" {ch} "
        elif is_space(ch):
            out = " "
        elif is_dropped(ch) or (self.strip_marks and unicodedata.category(ch) == "Mn"):
            out = None
        else:
            out = ch
        self[code] = out
        return out


class Tokenizer:
    """``Tokenizer(vocab_path_or_token_dict, do_lower_case=True)``, methods as bert4keras's Tokenizer.

    ``vocab`` may be a vocab.txt path, a token -> id dict, or a list of tokens (ids in order).
    """

    def __init__(self, vocab, do_lower_case=True, word_maxlen=200):
        if isinstance(vocab, (str, Path)):
            vocab = load_vocab(vocab)
        elif not isinstance(vocab, dict):
            vocab = {token: i for i, token in enumerate(vocab)}
        self.vocab = dict(vocab)
        self.inverse = {i: token for token, i in self.vocab.items()}
        self.do_lower_case = do_lower_case
        self.word_maxlen = word_maxlen
        missing = [t for t in SPECIALS[:4] if t not in self.vocab]
        if missing:
            raise ValueError(f"vocabulary lacks the special tokens {missing}")
        self.pad_id, self.unk_id, self.cls_id, self.sep_id = (self.vocab[t] for t in SPECIALS[:4])
        self.mask_id = self.vocab.get("[MASK]")
        self._table = _CharTable(strip_marks=do_lower_case)
        self._word_tokens = {}   # word -> its WordPiece tokens (unknown words stay whole)
        self._word_ids = {}      # word -> their ids
        self._char_norm = {}     # character -> its normalised form, for rematch

    @property
    def vocab_size(self):
        return len(self.vocab)

    # -- words and pieces ------------------------------------------------------------------------------
    def words(self, text):
        """The normalised text split into words (steps 1 and 2 of the module docstring)."""
        if self.do_lower_case:
            text = unicodedata.normalize("NFD", text.lower())
        return text.translate(self._table).split()

    def _pieces(self, word):
        if len(word) > self.word_maxlen:
            return (word,)
        pieces, start, vocab = [], 0, self.vocab
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in vocab:
                    break
            else:
                return (word,)  # no piece matches here: the whole word is unknown
            pieces.append(piece)
            start = end
        return tuple(pieces)

    def _word_to_ids(self, word):
        ids = self._word_ids.get(word)
        if ids is None:
            if len(self._word_ids) > 1_000_000:
                self._word_ids.clear()
            tokens = self._pieces(word)
            ids = self._word_ids[word] = tuple(self.vocab.get(t, self.unk_id) for t in tokens)
        return ids

    def _text_ids(self, text):
        ids, cache = [], self._word_ids
        for word in self.words(text):
            found = cache.get(word)
            ids.extend(found if found is not None else self._word_to_ids(word))
        return ids

    # -- bert4keras API --------------------------------------------------------------------------------
    def tokenize(self, text, maxlen=None):
        """[CLS] + WordPiece tokens + [SEP]; with ``maxlen``, tokens before [SEP] are dropped to fit."""
        tokens = ["[CLS]"]
        cache = self._word_tokens
        for word in self.words(text):
            pieces = cache.get(word)
            if pieces is None:
                if len(cache) > 1_000_000:
                    cache.clear()
                pieces = cache[word] = self._pieces(word)
            tokens.extend(pieces)
        tokens.append("[SEP]")
        if maxlen is not None:
            tokens = self._cut(tokens, maxlen)
        return tokens

    def token_to_id(self, token):
        return self.vocab.get(token, self.unk_id)

    def tokens_to_ids(self, tokens):
        return [self.vocab.get(t, self.unk_id) for t in tokens]

    def id_to_token(self, i):
        return self.inverse[i]

    def ids_to_tokens(self, ids):
        return [self.inverse[i] for i in ids]

    def _sequence_ids(self, text):
        """[CLS] ids [SEP] for a string, or the ids of a given token list (used as is, as bert4keras)."""
        if isinstance(text, str):
            return [self.cls_id, *self._text_ids(text), self.sep_id]
        return self.tokens_to_ids(text)

    def encode(self, first, second=None, maxlen=None):
        """(token_ids, segment_ids) for ``first`` or the pair [CLS] first [SEP] second [SEP].

        With ``maxlen`` the pair is cut to at most ``maxlen`` tokens, one token at a time from just before
        the final [SEP] of the longer part (the first on ties), exactly as bert4keras.
        """
        a = self._sequence_ids(first)
        b = None if second is None else self._sequence_ids(second)
        return self._join(a, b, maxlen)

    def encode_batch(self, firsts, seconds=None, maxlen=None):
        """``encode`` over lists of texts: a list of (token_ids, segment_ids)."""
        if seconds is None:
            return [self.encode(t, None, maxlen) for t in firsts]
        if len(seconds) != len(firsts):
            raise ValueError(f"encode_batch: {len(firsts)} first texts but {len(seconds)} second texts")
        return [self.encode(a, b, maxlen) for a, b in zip(firsts, seconds)]

    @staticmethod
    def _cut(ids, length):
        """``ids`` shortened to ``length`` by removing items just before the last one."""
        if length >= len(ids):
            return ids
        if length < 1:
            raise IndexError(f"cannot truncate a sequence to {length} tokens")
        return ids[:length - 1] + ids[-1:]

    def _join(self, a, b, maxlen):
        if b is None:
            if maxlen is not None and a:
                a = self._cut(a, truncate_lengths(maxlen, [len(a)])[0])
            return a, [0] * len(a)
        if maxlen is not None:  # bert4keras counts the second [CLS] before dropping it: maxlen + 1
            lengths = iter(truncate_lengths(maxlen + 1, [len(p) for p in (a, b) if p]))
            a = self._cut(a, next(lengths)) if a else a
            b = self._cut(b, next(lengths)) if b else b
        b = b[1:]
        return a + b, [0] * len(a) + [1] * len(b)

    def decode(self, ids, tokens=None):
        """Readable text from ids (specials dropped; CJK glued, Latin words spaced; bert4keras's rules)."""
        tokens = [t for t in (tokens or self.ids_to_tokens(ids)) if not is_special(t)]
        text = ""
        for i, token in enumerate(tokens):
            if token[:2] == "##":
                text += token[2:]
            elif len(token) == 1 and is_cjk(token):
                text += token
            elif len(token) == 1 and is_punctuation(token):
                text += token + " "
            elif i > 0 and is_cjk(text[-1]):
                text += token
            else:
                text += " " + token
        text = re.sub(" +", " ", text)
        text = re.sub(r"' (re|m|s|t|ve|d|ll) ", r"'\1 ", text)
        glue = "|".join(re.escape(p) for p in CJK_PUNCTUATION + "+-/={(<[")
        text = re.sub(f"({glue}) ", r"\1", text)
        text = re.sub(r"(\d\.) (\d)", r"\1\2", text)
        return text.strip()

    def _normalize_char(self, ch):
        out = self._char_norm.get(ch)
        if out is None:
            out = ch
            if self.do_lower_case:
                out = "".join(c for c in unicodedata.normalize("NFD", ch.lower())
                              if unicodedata.category(c) != "Mn")
            out = self._char_norm[ch] = "".join(c for c in out if not is_dropped(c))
        return out

    def rematch(self, text, tokens):
        """For each token, the list of indices of the characters of ``text`` it came from ([] for specials).

        Matches bert4keras: the text is lowercased, each character normalised on its own, and each token
        (without "##") is searched for left to right in the normalised text.
        """
        if self.do_lower_case:
            text = text.lower()
        normalized, char_index = [], []
        for i, ch in enumerate(text):
            piece = self._normalize_char(ch)
            normalized.append(piece)
            char_index.extend([i] * len(piece))
        normalized = "".join(normalized)
        mapping, offset = [], 0
        for token in tokens:
            if is_special(token):
                mapping.append([])
                continue
            token = stem(token)
            start = normalized.find(token, offset)
            if start < 0:
                raise ValueError(f"rematch: token {token!r} not found in the text after position {offset}")
            offset = start + len(token)
            mapping.append(char_index[start:offset])
        return mapping
