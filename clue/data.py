"""Readers for every CLUE file format, returning plain Python records (dicts).

- JSON lines (afqmc, tnews, iflytek, cmnli, ocnli, cluewsc2020, csl, cluener, chid): ``load_json_lines``;
  classification files through ``load_classification`` (label checked, NLI "-" rows dropped);
- ``labels.json`` (tnews, iflytek): ``load_labels``;
- SQuAD-style cmrc2018: ``load_cmrc2018`` (one record per question);
- C3 nested lists: ``load_c3`` (one record per question);
- ChID lines plus ``*_answer.json``: ``load_chid`` (one record per blank);
- CLUENER: ``load_cluener`` (entities as inclusive character spans).

Lines are split on "\\n" only (iflytek's test set has U+2028 inside strings, which ``str.splitlines`` would
break on); a trailing "\\r" (C3 uses CRLF), a leading U+FEFF and blank lines are ignored. Any problem raises
``DataError`` naming the file and the line. ``text_lines`` also reads a stream a line at a time, and the
JSON-lines readers take a part of a file read so (``lines=``): clue-predict streams its input. Which files
a task has, and which reader reads them, is ``clue.registry``'s to say.
"""

import json
import re
from pathlib import Path


class DataError(ValueError):
    """A data file is malformed; the message starts with ``file:line:``."""

    def __init__(self, path, line, message):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path, self.line = path, line


# -- JSON lines ------------------------------------------------------------------------------------------
def read_text(path):
    """The file's text, unchanged (newline="": \r and U+2028 stay as they are); it must be UTF-8."""
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(path, raw.count(b"\n", 0, err.start) + 1, f"not UTF-8 ({err.reason} at byte "
                                                                   f"{err.start})") from None


def text_lines(path, stream=None):
    """(line number from 1, text) of every line of a UTF-8 file, a trailing "\\r" and a leading U+FEFF
    removed; from ``stream`` (a binary file: a pipe, a file too large to hold), one line at a time, when
    given (``path`` then only names it in messages)."""
    if stream is None:
        lines = read_text(path).split("\n")
    else:
        lines = (_decoded(raw, path, number) for number, raw in enumerate(stream, 1))
    for number, line in enumerate(lines, 1):
        line = line.removesuffix("\n").rstrip("\r")
        yield number, line.lstrip("\ufeff") if number == 1 else line


def _decoded(raw, path, number):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(path, number, f"not UTF-8 ({err.reason} at byte {err.start} of the line)") from None


def parse_json_line(path, number, line):
    """The JSON value of line ``number`` of ``path``."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(path, number, f"not valid JSON ({err.msg} at column {err.colno})") from None


def iter_json_lines(path):
    """(line number from 1, parsed object) for each non-blank line of a JSON-lines file."""
    for number, line in text_lines(path):
        if line.strip():
            yield number, parse_json_line(path, number, line)


def require(record, fields, path, line):
    """Raise unless ``record`` is a JSON object holding every one of ``fields``."""
    if not isinstance(record, dict):
        raise DataError(path, line, f"expected a JSON object, got {type(record).__name__}")
    missing = [f for f in fields if f not in record]
    if missing:
        raise DataError(path, line, f"missing field{'s' if len(missing) > 1 else ''} "
                                    f"{', '.join(map(repr, missing))} (has {', '.join(record) or 'none'})")
    return record


def load_json_lines(path, fields=(), lines=None):
    """The objects of a JSON-lines file, each checked to hold ``fields``; ``_line`` holds its line number.
    ``lines``: (line number, object) pairs of ``path`` read already (a part of a streamed file) instead."""
    records = []
    for line, record in iter_json_lines(path) if lines is None else lines:
        require(record, fields, path, line)
        record["_line"] = line
        records.append(record)
    return records


def ensure_ids(records, path):
    """Give records without an ``id`` their index in the file (0-based), saying so once."""
    missing = [i for i, r in enumerate(records) if "id" not in r]
    for i in missing:
        records[i]["id"] = i
    if missing:
        print(f"note: {len(missing)} records of {path} have no 'id'; using their index in the file (from 0)")
    return records


def load_labels(path, field="label"):
    """``labels.json`` as {label: description}, in file order (tnews: "100" -> "news_story")."""
    labels = {}
    for line, record in iter_json_lines(path):
        require(record, (field,), path, line)
        desc = next((record[k] for k in ("label_desc", "label_des") if k in record), None)
        labels[str(record[field])] = desc
    return labels


def load_classification(path, fields, labels=None, label_field="label", drop=("-",), lines=None):
    """Records of a labelled or unlabelled classification file.

    ``fields`` must be on every line: names of text fields, or {name: type}, the type ``str``, ``list`` (of
    strings: csl's keywords) or ``dict`` (cluewsc2020's target). Where a line has ``label_field`` its value
    (as a string) must be in ``labels`` (when given) unless it is one of ``drop`` (NLI's "-": no majority
    label), in which case the row is left out and the count printed. A file without labels (a test set)
    keeps its ``id`` field, or gets each record's index as its id. ``lines``: see ``load_json_lines`` (a
    part of a file: the records keep the ids they have).
    """
    allowed = None if labels is None else {str(x) for x in labels}
    kinds = fields if isinstance(fields, dict) else dict.fromkeys(fields, str)
    records, dropped = [], 0
    for record in load_json_lines(path, kinds, lines):
        for name, kind in kinds.items():
            _expect_field(record, name, kind, path, record["_line"])
        if label_field in record:
            label = record[label_field] = str(record[label_field])
            if label in drop:
                dropped += 1
                continue
            if allowed is not None and label not in allowed:
                raise DataError(path, record["_line"], f"label {label!r} is not one of {sorted(allowed)}")
        records.append(record)
    if dropped:
        print(f"{path}: dropped {dropped} rows labelled {' or '.join(map(repr, drop))}")
    if lines is None and records and all(label_field not in r for r in records):  # a test file: predictions need ids
        ensure_ids(records, path)
    return records


def load_wsc(path, labels=None, lines=None):
    """cluewsc2020: a classification file whose ``target`` names two spans of ``text`` (the candidate and the
    pronoun), each checked to be at its index."""
    records = load_classification(path, {"text": str, "target": dict}, labels, lines=lines)
    for record in records:
        line, target = record["_line"], record["target"]
        require(target, ("span1_index", "span1_text", "span2_index", "span2_text"), path, line)
        for span in ("span1", "span2"):
            start, words = target[f"{span}_index"], _expect(target[f"{span}_text"], str, path, line,
                                                            f"target.{span}_text")
            if not is_int(start) or record["text"][start:start + len(words)] != words:
                raise DataError(path, line, f"target.{span}_text {words!r} is not at {span}_index {start!r} "
                                            f"of the text")
    return records


# -- whole-file JSON (cmrc2018, c3, chid answers) --------------------------------------------------------
def load_json(path):
    try:
        return json.loads(read_text(path).lstrip("\ufeff"))
    except json.JSONDecodeError as err:
        raise DataError(path, err.lineno, f"not valid JSON ({err.msg} at column {err.colno})") from None


class Lines:
    """Line numbers of JSON values in a file's text, for messages. Values are looked for forward from the
    last one found (files list them in order, so one pass over the text), else anywhere; None if absent
    (e.g. written with \\u escapes)."""

    def __init__(self, text):
        self.text, self.pos, self.line = text, 0, 1

    def of(self, value):
        if value is None:
            return None
        needle = json.dumps(value, ensure_ascii=False)
        at = self.text.find(needle, self.pos)
        if at < 0:
            at = self.text.find(needle)
            return None if at < 0 else self.text.count("\n", 0, at) + 1
        self.line += self.text.count("\n", self.pos, at)
        self.pos = at
        return self.line


def _expect(value, kind, path, line, where):
    if not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise DataError(path, line, f"{where}: expected {names}, got {type(value).__name__}")
    return value


def _expect_texts(value, path, line, where):
    """A list of strings (C3's dialogue lines and choices, ChID's candidates, csl's keywords)."""
    for i, item in enumerate(_expect(value, list, path, line, where)):
        _expect(item, str, path, line, f"{where}[{i}]")
    return value


def _expect_field(record, name, kind, path, line):
    """``record[name]`` of ``kind``: str, dict, or list (a list of strings)."""
    if kind is list:
        return _expect_texts(record[name], path, line, name)
    return _expect(record[name], kind, path, line, name)


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def load_cmrc2018(path):
    """SQuAD-style cmrc2018 file -> one record per question.

    Record: id, question, context, context_id, title, article_id, answers (texts), answer_starts (ints);
    the answer lists are empty in a test file. Offsets are kept as given (a few in the official files are off).
    """
    doc, lines = load_json(path), Lines(read_text(path))
    _expect(doc, dict, path, 1, "top level")
    if "data" not in doc:
        raise DataError(path, 1, "no 'data' list at the top level (not a SQuAD-style file)")
    records = []
    for i, article in enumerate(_expect(doc["data"], list, path, 1, "data")):
        where = f"data[{i}]"
        line = lines.of(article.get("id")) if isinstance(article, dict) else None
        require(_expect(article, dict, path, line, where), ("paragraphs",), path, line)
        for j, paragraph in enumerate(_expect(article["paragraphs"], list, path, line, where + ".paragraphs")):
            pwhere = f"{where}.paragraphs[{j}]"
            pline = lines.of(paragraph.get("id")) if isinstance(paragraph, dict) else line
            require(_expect(paragraph, dict, path, pline or line, pwhere), ("context", "qas"), path, pline or line)
            context = _expect(paragraph["context"], str, path, pline, pwhere + ".context")
            if not context.strip():   # a question without a context has nothing to read an answer from
                raise DataError(path, pline or line, f"{pwhere}.context is empty")
            for k, qa in enumerate(_expect(paragraph["qas"], list, path, pline, pwhere + ".qas")):
                qwhere = f"{pwhere}.qas[{k}]"
                qline = (lines.of(qa.get("id")) if isinstance(qa, dict) else None) or pline or line
                require(_expect(qa, dict, path, qline, qwhere), ("id", "question"), path, qline)
                answers = _expect(qa.get("answers", []), list, path, qline, qwhere + ".answers")
                for a, answer in enumerate(answers):
                    if not isinstance(answer, dict) or "text" not in answer:
                        raise DataError(path, qline, f"{qwhere}: each answer needs a 'text' (got {answer!r})")
                    _expect(answer["text"], str, path, qline, f"{qwhere}.answers[{a}].text")
                    start = answer.get("answer_start")
                    if start is not None and not is_int(start):
                        raise DataError(path, qline, f"{qwhere}.answers[{a}].answer_start: expected int, "
                                                     f"got {type(start).__name__} {start!r}")
                records.append({
                    "id": qa["id"], "question": _expect(qa["question"], str, path, qline, qwhere + ".question"),
                    "context": context, "context_id": paragraph.get("id"), "title": article.get("title"),
                    "article_id": article.get("id", i),
                    "answers": [a["text"] for a in answers],
                    "answer_starts": [a.get("answer_start") for a in answers], "_line": qline,
                })
    return records


def load_c3(paths):
    """C3 files (a list of [dialogue lines, questions, document id]; CLUE's test1.0/test1.1 have no
    document id) -> one record per question.

    ``paths``: one file or several (CLUE's d- and m- parts). Record: id (the question's own "id" when the
    file has one, else its index across the files, from 0), doc_id (the document's id, else
    "<file name>:<index>"), context (list of lines), question,
    choices, answer (None in a test file) and label (index of answer in choices, None in a test file).
    Every question has at least 2 choices (how many the task scores is the registry's to check), and its
    answer, where given, is one of them. Records keep their file in ``_path``.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    records, indexed = [], False
    for path in paths:
        where_is = Lines(read_text(path))
        for d, item in enumerate(_expect(load_json(path), list, path, 1, "top level")):
            where = f"document [{d}]"
            doc_id = item[2] if isinstance(item, list) and len(item) > 2 else f"{Path(path).name}:{d}"
            first = item[0][0] if isinstance(item, list) and item and isinstance(item[0], list) and item[0] else None
            line = where_is.of(first)  # the id comes after the questions: locate the first dialogue line
            if not isinstance(item, list) or len(item) < 2:
                raise DataError(path, line, f"{where}: expected [dialogue lines, questions, id]")
            lines = _expect_texts(item[0], path, line, where + " dialogue")
            for k, q in enumerate(_expect(item[1], list, path, line, where + " questions")):
                qwhere = f"{where} question [{k}]"
                qline = (where_is.of(q.get("question")) if isinstance(q, dict) else None) or line
                require(_expect(q, dict, path, qline, qwhere), ("question", "choice"), path, qline)
                _expect(q["question"], str, path, qline, f"{qwhere} question")
                choices = _expect_texts(q["choice"], path, qline, f"{qwhere} choice")
                if len(choices) < 2:
                    raise DataError(path, qline, f"{qwhere}: {len(choices)} choice{'s' * (len(choices) != 1)}, "
                                                 f"a question needs at least 2")
                answer = q.get("answer")
                if answer is not None and answer not in choices:
                    raise DataError(path, qline, f"{where} question [{k}]: answer {answer!r} is not one of "
                                                 f"the choices {choices}")
                indexed |= "id" not in q and answer is None
                records.append({
                    "id": q.get("id", len(records)), "doc_id": doc_id, "context": lines,
                    "question": q["question"], "choices": choices, "answer": answer,
                    "label": None if answer is None else choices.index(answer), "_line": qline,
                    "_path": path,
                })
    if indexed:
        print(f"note: unlabelled questions of {', '.join(map(str, paths))} have no 'id'; "
              f"using their index across these files (from 0)")
    return records


# -- ChID ------------------------------------------------------------------------------------------------
CHID_BLANK = re.compile(r"#idiom\d+#")   # a blank in a ChID passage (the files number them with 6 digits)


def load_chid(path, answer_path=None, candidates=None, lines=None):
    """ChID lines {"candidates": [10 idioms], "content": [passages with #idiomNNNNNN# blanks]} -> one record
    per blank: id ("#idiom000000#"), candidates, text (its passage), group (the line number: blanks of a
    line share the candidates), passage (index in content) and label (index of the right candidate, from
    ``answer_path`` = {blank: index}; None without it). ``candidates``: how many every line must have
    (None: any number). ``lines``: see ``load_json_lines``.
    """
    answers = None
    if answer_path is not None:
        answers = _expect(load_json(answer_path), dict, answer_path, 1, "answer file")
    records = []
    for line, record in iter_json_lines(path) if lines is None else lines:
        require(record, ("candidates", "content"), path, line)
        idioms = _expect_texts(record["candidates"], path, line, "candidates")
        if candidates is not None and len(idioms) != candidates:
            raise DataError(path, line, f"candidates: {len(idioms)} idioms, expected {candidates}")
        for p, passage in enumerate(_expect(record["content"], list, path, line, "content")):
            for blank in CHID_BLANK.findall(_expect(passage, str, path, line, f"content[{p}]")):
                label = None
                if answers is not None:
                    if blank not in answers:
                        raise DataError(path, line, f"blank {blank} has no answer in {answer_path}")
                    label = answers[blank]
                    if not is_int(label) or not 0 <= label < len(idioms):
                        raise DataError(answer_path, Lines(read_text(answer_path)).of(blank),
                                        f"answer {label!r} of {blank} is not a candidate index "
                                        f"0..{len(idioms) - 1}")
                records.append({"id": blank, "candidates": idioms, "text": passage, "group": line,
                                "passage": p, "label": label, "_line": line})
    return records


# -- CLUENER ---------------------------------------------------------------------------------------------
def load_cluener(path, types, lines=None):
    """CLUENER lines {"text", "label": {type: {entity: [[start, end], ...]}}} -> records with ``text``,
    ``id`` (the line's own, or its index in a test file) and ``entities``: sorted (start, end, type) with
    ``end`` inclusive, each checked to spell its entity and to be of one of ``types``. A test file has no
    "label": entities is None. ``lines``: see ``load_classification``.
    """
    records = load_json_lines(path, ("text",), lines)
    for record in records:
        line, text = record["_line"], _expect(record["text"], str, path, record["_line"], "text")
        if "label" not in record:
            record["entities"] = None
            continue
        entities = []
        for kind, spans in _expect(record["label"], dict, path, line, "label").items():
            if kind not in types:
                raise DataError(path, line, f"entity type {kind!r} is not one of {list(types)}")
            for entity, places in _expect(spans, dict, path, line, f"label.{kind}").items():
                for place in _expect(places, list, path, line, f"label.{kind}.{entity}"):
                    ok = (isinstance(place, list) and len(place) == 2 and all(isinstance(x, int) for x in place)
                          and 0 <= place[0] <= place[1] < len(text))
                    if not ok or text[place[0]:place[1] + 1] != entity:
                        raise DataError(path, line, f"{kind} {entity!r} at {place}: the span does not "
                                                    f"spell the entity in the text")
                    entities.append((place[0], place[1], kind))
        record["entities"] = sorted(entities)
    if lines is None and records and all(r["entities"] is None for r in records):
        ensure_ids(records, path)
    return records
