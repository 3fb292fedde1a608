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

Speed. bert4keras spends its time in a Python loop over characters; here the per-character work runs in
C. ``encode`` lowercases/normalises with the standard library, then maps every character straight to its
result with one ``str.translate`` (numpy indexing from 64 characters on, where that is faster): an
isolated character (CJK, punctuation) becomes the character whose code point is its token id, separators
a marker, dropped characters nothing, and any other character moves to Unicode plane 16, so that each run
of plane-16 characters left is exactly one word. Only those words (Latin, digits, emoji...) go through
WordPiece, once per distinct word (cached). The string of id characters becomes a list of ints through
``array``. ``encode_batch`` does this once for all texts joined by NUL (bert4keras drops NUL, so a text
holding one goes alone), sharing the per-call cost. Texts the id string cannot carry (private-use
characters of plane 16, U+FFFE, U+FFFF) and vocabularies with ids above U+D7FF take the plain path:
space-padded words, ``split``, WordPiece per word, which ``tokenize`` also uses.

HF ``tokenizers`` (Rust) was measured as well: its ``encode_batch`` (BERT-like settings, not yet exact)
gave ~60k texts/s on a 20k sample of CLUE fields, where a first pure-Python version of this module gave
150-230k one text at a time (the per-text ``Encoding`` objects cost more than the tokenization), and
matching bert4keras would have needed custom normaliser and pre-tokeniser rules, so it is not used.
``python scripts/benchmark.py --only tokenization`` measures texts/s against bert4keras;
``scripts/tokenizer_parity.py`` checks identical ids, tokens and rematch on every shared CLUE text.
"""

import itertools
import re
import unicodedata
from array import array
from pathlib import Path

import numpy as np

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


class VocabError(ValueError):
    """A vocabulary file that cannot be used: names the file (and the line)."""


BOM = "\ufeff"


def load_vocab(path):
    """token -> id from a BERT vocab.txt: the first whitespace-separated field of each line, in order.

    Lines are read with universal newlines; a line with no field (the real Chinese vocab has one holding
    only U+2028) gives the empty token. A repeated token takes the id ``len(vocab)`` as in bert4keras.

    A UTF-8 byte order mark is dropped when a bracketed token such as [PAD] follows it. bert4keras keeps it
    ("\ufeff[PAD]"), but no text can tokenize to either token (U+FEFF is a format character, dropped, and
    brackets are split off), so every id is the same as bert4keras's. Before any other token the mark would
    change which texts map to it, so that is an error.
    """
    vocab = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not vocab and line.startswith(BOM):
                    line = _strip_bom(path, line)
                fields = line.split()
                vocab[fields[0] if fields else line.strip()] = len(vocab)
    except UnicodeDecodeError:
        data = Path(path).read_bytes()   # again, whole: the decoder counted from the start of a chunk
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as err:
            line = data[:err.start].count(b"\n") + 1
            raise VocabError(f"{path}:{line}: not UTF-8 ({err.reason})") from None
        raise
    return vocab


def _strip_bom(path, line):
    line = line[len(BOM):]
    fields = line.split()
    if not (fields and is_special(fields[0])):
        raise VocabError(f"{path}:1: starts with a UTF-8 byte order mark before {line.strip()!r}; bert4keras "
                         f"would read that token as {BOM + line.strip()!r}, which no text matches: save the file "
                         f"as UTF-8 without BOM")
    return line


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


def char_class(ch, strip_marks):
    """How step 2 treats ``ch``: "isolate", "space" (separates words), "drop" or "keep"."""
    if is_punctuation(ch) or is_cjk(ch):
        return "isolate"
    if is_space(ch):
        return "space"
    if is_dropped(ch) or (strip_marks and unicodedata.category(ch) == "Mn"):
        return "drop"
    return "space" if ch.isspace() else "keep"  # U+2028/U+2029: kept, but str.split() splits on them


SHIFT = 0x100000           # kept BMP characters move up to plane 16; token ids stay in the BMP
SPACE = "\ufffe"           # separates words in the id string (U+FFFE itself is EXOTIC)
BATCH_SEP = "\uffff"       # between texts in encode_batch (a U+FFFF in a text sends it the plain path)
JOIN = "\U0010fffd"        # a dropped character, in the numpy lookup only (U+FFFD is dropped, so free)
EXOTIC = "\U0010ffff"      # a character the id string cannot carry: the text takes the plain path
RUN = re.compile("([\U00010000-\U0010fffd]+)")  # one word of kept characters (JOINs included)
MAX_FAST_ID = 0xD7FF       # ids must be BMP characters below the surrogates
LUT_MIN_CHARS = 64         # from this length numpy's lookup beats str.translate (measured)


class _WordTable(dict):
    """translate table of the plain path, filled on first sight of each character: isolated characters
    padded with spaces, separators to a space, dropped ones to None."""

    def __init__(self, strip_marks):
        super().__init__()
        self.strip_marks = strip_marks

    def __missing__(self, code):
        ch = chr(code)
        kind = char_class(ch, self.strip_marks)
        out = self[code] = {"isolate": f" {ch} ", "space": " ", "drop": None}.get(kind, ch)
        return out


class _Unshift(dict):
    """translate table taking a word's characters back from plane 16 (JOIN, a dropped one, goes)."""

    def __missing__(self, code):
        out = self[code] = None if code == ord(JOIN) else chr(code - SHIFT) if code >= SHIFT else chr(code)
        return out


_UNSHIFT = _Unshift()
_BMP_CLASSES = {}
_TABLES = {}


def _bmp_classes(strip_marks):
    """char_class of every BMP character (computed once per process and casing)."""
    if strip_marks not in _BMP_CLASSES:
        _BMP_CLASSES[strip_marks] = [char_class(chr(c), strip_marks) for c in range(0x10000)]
    return _BMP_CLASSES[strip_marks]


def _id_tables(vocab, unk_id, strip_marks):
    """The id string's translate table and its numpy twin (built on first use), shared by tokenizers
    with the same ids for the isolated characters.

    The table is a plain dict (faster than one with __missing__) over the whole BMP plus plane 16; other
    astral characters are left as they are and end up inside words, which are resolved separately.
    """
    classes = _bmp_classes(strip_marks)
    isolated = tuple(vocab.get(chr(c), unk_id) for c, kind in enumerate(classes) if kind == "isolate")
    key = (strip_marks, isolated)
    if key not in _TABLES:
        out = iter(isolated)
        table = dict.fromkeys(range(SHIFT, 0x110000), EXOTIC)
        for code, kind in enumerate(classes):
            if kind == "isolate":
                table[code] = chr(next(out))
            elif kind == "space":
                table[code] = SPACE
            elif kind == "drop":
                table[code] = None
            else:
                table[code] = EXOTIC if code == 0xFFFE else BATCH_SEP if code == 0xFFFF else chr(SHIFT + code)
        _TABLES.clear()  # keep one vocabulary's tables at a time
        _TABLES[key] = [table, None]
    return _TABLES[key]


def _lookup_array(tables):
    """numpy version of a translate table (dropped characters -> JOIN), made once."""
    if tables[1] is None:
        table = tables[0]
        lut = np.arange(0x110000, dtype=np.uint32)  # astral characters stay as they are
        lut[SHIFT:] = ord(EXOTIC)
        lut[:0x10000] = [ord(JOIN if table[c] is None else table[c]) for c in range(0x10000)]
        tables[1] = lut
    return tables[1]


def truncate_lengths(maxlen, lengths):
    """The lengths ``truncate_sequences`` leaves: one at a time off the longest (the first on ties)."""
    lengths = list(lengths)
    excess = sum(lengths) - maxlen
    if excess <= 0:
        return lengths
    if len(lengths) == 2:  # the pair case in closed form: cut the longer down to the shorter, then alternate
        a, b = lengths
        cut = min(excess, abs(a - b))
        a, b, excess = (a - cut, b, excess - cut) if a >= b else (a, b - cut, excess - cut)
        return [a - (excess + 1) // 2, b - excess // 2]
    for _ in range(excess):
        lengths[lengths.index(max(lengths))] -= 1
    return lengths


class Tokenizer:
    """``Tokenizer(vocab_path_or_token_dict, do_lower_case=True)``, methods as bert4keras's Tokenizer.

    ``vocab`` may be a vocab.txt path, a token -> id dict, or a list of tokens (ids in order).
    """

    def __init__(self, vocab, do_lower_case=True, word_maxlen=200):
        source = "vocabulary"
        if isinstance(vocab, (str, Path)):
            source, vocab = str(vocab), load_vocab(vocab)
        elif not isinstance(vocab, dict):
            vocab = {token: i for i, token in enumerate(vocab)}
        self.vocab = dict(vocab)
        self.inverse = {i: token for token, i in self.vocab.items()}
        self.do_lower_case = do_lower_case
        self.word_maxlen = word_maxlen
        missing = [t for t in SPECIALS[:4] if t not in self.vocab]
        if missing:
            raise VocabError(f"{source} lacks the special tokens {missing}"
                             + (f" ({self.vocab_size} tokens read)" if source != "vocabulary" else ""))
        self.pad_id, self.unk_id, self.cls_id, self.sep_id = (self.vocab[t] for t in SPECIALS[:4])
        self.mask_id = self.vocab.get("[MASK]")
        self._words_table = _WordTable(do_lower_case)
        self._word_tokens = {}   # word -> its WordPiece tokens (an unknown word stays whole)
        self._run_cache = {}     # plane-16 run -> its ids as a string
        self._char_norm = {}     # character -> its normalised form, for rematch
        self._fast = max(self.vocab.values()) <= MAX_FAST_ID
        if self._fast:
            self._tables = _id_tables(self.vocab, self.unk_id, do_lower_case)
            self._ids_table = self._tables[0]
            self._cls, self._sep = chr(self.cls_id), chr(self.sep_id)

    @property
    def vocab_size(self):
        return len(self.vocab)

    # -- the plain path: words, then WordPiece -----------------------------------------------------------
    def _normalize(self, text):
        return unicodedata.normalize("NFD", text.lower()) if self.do_lower_case else text

    def words(self, text):
        """The normalised text split into words (steps 1 and 2 of the module docstring)."""
        return self._normalize(text).translate(self._words_table).split()

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

    def _word_pieces(self, word):
        pieces = self._word_tokens.get(word)
        if pieces is None:
            if len(self._word_tokens) > 1_000_000:
                self._word_tokens.clear()
            pieces = self._word_tokens[word] = self._pieces(word)
        return pieces

    def _plain_ids(self, text):
        """[CLS] ids [SEP] through the plain path."""
        return self.tokens_to_ids(self.tokenize(text))

    # -- the id-string path -------------------------------------------------------------------------------
    def _run_ids(self, run):
        """A run of plane-16 characters (one word) -> its ids as characters."""
        word = run.translate(_UNSHIFT)
        if word.isascii():  # the usual case: one Latin/digit word
            pieces = self._word_pieces(word)
        else:  # already normalised, but astral characters in the run still need step 2: re-split it
            pieces = [t for w in word.translate(self._words_table).split() for t in self._word_pieces(w)]
        return "".join([chr(self.vocab.get(t, self.unk_id)) for t in pieces])

    def _lookup(self, text):
        """``text.translate(self._ids_table)`` through numpy (faster per character, dearer per call, so for
        long texts), where dropped characters become JOIN rather than vanish."""
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32)
        return _lookup_array(self._tables)[codes].tobytes().decode("utf-32-le")

    def _resolve_words(self, s):
        """Translated text with its plane-16 runs (words) replaced by their ids; None if it holds EXOTIC."""
        if EXOTIC in s:
            return None
        parts = RUN.split(s)  # [between, word, between, word, ...]
        words, cache = parts[1::2], self._run_cache
        found = list(map(cache.get, words))  # cached words without a Python loop
        if None in found:
            new = set(words).difference(cache)
            if len(cache) + len(new) > 1_000_000:
                cache.clear()
                new = set(words)
            cache.update((run, self._run_ids(run)) for run in new)
            found = map(cache.get, words)
        parts[1::2] = found
        return "".join(parts).replace(SPACE, "").replace(JOIN, "")

    def _id_string(self, text):
        """[CLS] ids [SEP] of normalised ``text`` as one BMP character per token, or None for the plain path.
        A BATCH_SEP in ``text`` comes out as [SEP] BATCH_SEP [CLS] (encode_batch's text boundary)."""
        s = text.translate(self._ids_table) if len(text) < LUT_MIN_CHARS else self._lookup(text)
        body = s.replace(SPACE, "")
        if len(body.encode("utf-16-le")) != 2 * len(body):  # beyond the BMP: words to resolve (or EXOTIC)
            body = self._resolve_words(s)
            if body is None:
                return None
        if BATCH_SEP in body:
            body = body.replace(BATCH_SEP, self._sep + BATCH_SEP + self._cls)
        return self._cls + body + self._sep

    def _sequence(self, text):
        """[CLS] ids [SEP] of a text (a token list is converted as it is)."""
        if not isinstance(text, str):
            return self.tokens_to_ids(text)
        if self._fast:
            text = unicodedata.normalize("NFD", text.lower()) if self.do_lower_case else text
            ids = None if BATCH_SEP in text else self._id_string(text)
            if ids is not None:
                return array("H", ids.encode("utf-16-le")).tolist()
        return self._plain_ids(text)

    def _id_strings(self, texts):
        """``_id_string`` of every text, in one normalise/translate pass over all of them joined by NUL
        (which marks the text boundaries: bert4keras drops NUL, so a text holding one goes alone); None when
        some text needs the plain path."""
        try:
            joined = self._normalize("\x00".join(texts)) if self._fast and len(texts) > 1 else None
        except TypeError:  # token lists among the texts
            return None
        if joined is None or joined.count("\x00") != len(texts) - 1 or BATCH_SEP in joined:
            return None
        ids = self._id_string(joined.replace("\x00", BATCH_SEP))
        return None if ids is None else ids.split(BATCH_SEP)

    def _sequences(self, texts):
        """``_sequence`` for many texts (through ``_id_strings`` when it can)."""
        strings = self._id_strings(texts)
        if strings is None:
            return [self._sequence(t) for t in texts]
        return [array("H", part.encode("utf-16-le")).tolist() for part in strings]

    # -- bert4keras API --------------------------------------------------------------------------------
    def tokenize(self, text, maxlen=None):
        """[CLS] + WordPiece tokens + [SEP]; with ``maxlen``, tokens before [SEP] are dropped to fit.

        An unknown word appears as itself (normalised), as in bert4keras; it encodes to [UNK].
        """
        tokens = ["[CLS]"]
        for word in self.words(text):
            tokens.extend(self._word_pieces(word))
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

    def encode(self, first, second=None, maxlen=None):
        """(token_ids, segment_ids) for ``first`` or the pair [CLS] first [SEP] second [SEP].

        ``first``/``second`` are texts or token lists. With ``maxlen`` the result is cut to at most
        ``maxlen`` tokens, one token at a time from just before the final [SEP] of the longer part (the
        first on ties), exactly as bert4keras.
        """
        return self._join(self._sequence(first), None if second is None else self._sequence(second), maxlen)

    def encode_batch(self, firsts, seconds=None, maxlen=None, arrays=False):
        """``[encode(a, b, maxlen) for a, b in zip(firsts, seconds)]``, faster for many short texts.

        With ``arrays=True`` each example's token ids and segment ids are int32 numpy views into one buffer
        rather than lists: several times faster again for short texts, where making one Python int per
        token is most of the cost (the batching code pads arrays and lists alike).
        """
        firsts = list(firsts)
        if seconds is not None:
            seconds = list(seconds)
            if len(seconds) != len(firsts):
                raise ValueError(f"encode_batch: {len(firsts)} first texts but {len(seconds)} second texts")
        if arrays:
            return self._encode_arrays(firsts, seconds, maxlen)
        if seconds is None:
            sequences = self._sequences(firsts)
            if maxlen is not None:
                sequences = [a if len(a) <= maxlen else self._cut(a, maxlen) for a in sequences]
            return [(a, [0] * len(a)) for a in sequences]
        return [self._join(a, b, maxlen) for a, b in zip(self._sequences(firsts), self._sequences(seconds))]

    def _encode_arrays(self, firsts, seconds, maxlen):
        """encode_batch(arrays=True): the id strings cut and joined as ``encode`` does, then converted once."""
        strings = self._id_strings(firsts)
        if strings is not None and seconds is not None:
            second_strings = self._id_strings(seconds)
            strings = None if second_strings is None else [
                self._pair(a, b, maxlen) for a, b in zip(strings, second_strings)]
        elif strings is not None:
            cut = strings if maxlen is None else [self._cut(s, maxlen) for s in strings]
            strings = [(s, len(s)) for s in cut]
        if strings is None:  # the plain path: lists, then packed
            encoded = self.encode_batch(firsts, seconds, maxlen)
            lengths = [len(ids) for ids, _ in encoded]
            token_ids = np.fromiter(itertools.chain.from_iterable(ids for ids, _ in encoded), np.int32,
                                    sum(lengths))
            firsts_length = [segments.count(0) for _, segments in encoded]
        else:
            token_ids = np.frombuffer("".join([s for s, _ in strings]).encode("utf-16-le"), np.uint16)
            token_ids = token_ids.astype(np.int32)
            lengths = [len(s) for s, _ in strings]
            firsts_length = [n for _, n in strings]
        lengths = np.asarray(lengths, np.int64)
        ends = np.cumsum(lengths)
        starts = ends - lengths
        # segment 1 from the end of each first text to the end of its example: +1 / -1 marks, summed
        size = len(token_ids) + 1
        marks = np.bincount(starts + np.asarray(firsts_length, np.int64), minlength=size) \
            - np.bincount(ends, minlength=size)
        segment_ids = np.cumsum(marks[:-1], dtype=np.int32)
        token_ids.flags.writeable = segment_ids.flags.writeable = False   # shared by the views
        return [(token_ids[s:e], segment_ids[s:e]) for s, e in zip(starts.tolist(), ends.tolist())]

    @staticmethod
    def _cut(seq, length):
        """``seq`` shortened to ``length`` by removing items just before the last one (bert4keras's pop(-2))."""
        if length >= len(seq):
            return seq
        if length < 1:
            raise IndexError(f"cannot truncate a sequence to {length} tokens")
        return seq[:length - 1] + seq[-1:]

    def _pair(self, a, b, maxlen):
        """(``a`` and ``b`` as one sequence, cut to ``maxlen`` as bert4keras; how many of its tokens are
        ``a``'s). ``b``'s [CLS] is dropped; lists and id strings alike."""
        # bert4keras counts the second [CLS] before dropping it: maxlen + 1
        if maxlen is not None and len(a) + len(b) > maxlen + 1:
            lengths = iter(truncate_lengths(maxlen + 1, [len(p) for p in (a, b) if p]))
            a = self._cut(a, next(lengths)) if a else a
            b = self._cut(b, next(lengths)) if b else b
        return a + b[1:], len(a)

    def _join(self, a, b, maxlen):
        if b is None:
            a = a if maxlen is None else self._cut(a, maxlen)
            return a, [0] * len(a)
        joined, n = self._pair(a, b, maxlen)
        return joined, [0] * n + [1] * (len(joined) - n)

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

    def char_spans(self, text, maxlen=None):
        """The text's WordPiece ids (no [CLS]/[SEP]; at most ``maxlen``) and each token's (first, last)
        character index in ``text``: how span tasks map tokens back to characters. A literal "[xxx]" in the
        text becomes a special token that maps nowhere and is left out."""
        tokens = self.tokenize(text)[1:-1]
        if maxlen is not None:
            tokens = tokens[:maxlen]
        spans = [(chars[0], chars[-1]) if chars else None for chars in self.rematch(text, tokens)]
        ids = self.tokens_to_ids(tokens)
        keep = [i for i, s in enumerate(spans) if s is not None]
        return [ids[i] for i in keep], [spans[i] for i in keep]
