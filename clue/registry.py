"""The one table of facts about the CLUE tasks; everything else asks it instead of naming tasks.

One ``Task`` per CLUE task, keyed by its data folder name: its script, the files of each split (with the
names the CLUE release, CLUE 1.0 / 1.1 and the upstream sources use), how its records are read, the labels
it predicts and where a record keeps its gold answer, the dev metric, what a leaderboard answer is, which
test files become which leaderboard files and which submission they belong to, the official zip's
digests, and the defaults of its script's flags.
"""

import difflib
import sys
from dataclasses import dataclass, field
from pathlib import Path

from clue import data, demo

NLI_LABELS = ("entailment", "neutral", "contradiction")
TNEWS_LABELS = ("100", "101", "102", "103", "104", "106", "107", "108", "109", "110",
                "112", "113", "114", "115", "116")   # the 15 codes of tnews labels.json (105, 111 unused)
CLUENER_TYPES = ("address", "book", "company", "game", "government", "movie", "name", "organization",
                 "position", "scene")                # as the official CLUENER2020 scorer lists them
CLUE11, CLUENER = "CLUE 1.1", "CLUENER"               # the two leaderboards a file can be submitted to
# PaddleNLP's CLUE grid (examples/benchmark/clue/README.md), clue-run --grid paddlenlp: learning rate x batch
# size, classification and reading comprehension apart, CLUEWSC2020 also at batch size 8; no cluener there.
PADDLENLP_CLASSIFICATION = (("lr", ("1e-5", "2e-5", "3e-5", "5e-5")), ("batch_size", ("16", "32", "64")))
PADDLENLP_WSC = (("lr", ("1e-5", "2e-5", "3e-5", "5e-5")), ("batch_size", ("8", "16", "32", "64")))
PADDLENLP_READING = (("lr", ("1e-5", "2e-5", "3e-5")), ("batch_size", ("24", "32")))


@dataclass(frozen=True)
class Output:
    """A leaderboard file, the split it is predicted from, and the submission it belongs to (None: kept
    for reference only, such as the CLUE 1.0 files)."""

    name: str                # e.g. "tnews11_predict.json"
    split: str = "test"      # a key of Task.files
    board: str | None = CLUE11


@dataclass(frozen=True)
class Task:
    name: str                # data folder name
    script: str              # path of the task script inside the repository
    reader: object           # [paths of a split's parts] -> records, each with an "id" and the gold field
    labels: tuple | None     # the label strings a prediction may take; None where open (spans, entities)
    metric: str              # a name in clue.metrics.METRICS
    outputs: tuple           # Output entries
    files: dict = field(default_factory=dict)   # split -> names by preference (see find_files)
    answer: str = "label"    # a leaderboard answer: "label" (in labels), "text", "candidate" index, "entities"
    gold: str = "label"      # the record field holding the gold answer
    style: str = "lines"     # leaderboard file: "lines" ({"id", "label"} per line) or "object" (one JSON object)
    zip_sha256: tuple = ()   # official <name>_public.zip: (digest, size in bytes, who recorded it)
    zip_md5: tuple = ()      # (digest, who recorded it)
    demo: object = None      # folder, seed -> a generated data folder for the no-data demo
    epochs: int = 10         # default --epochs
    maxlen: int = 128        # default --maxlen
    batch_size: int = 32     # default --batch-size
    grad_accum: int = 1      # default --grad-accum
    paddlenlp_grid: tuple = ()   # ((flag, values), ...) of clue-run --grid paddlenlp; () not in that benchmark
    check_split: object = None   # task, split, files, records -> raises DataError / warns (see check)
    head: str = "classifier"     # the model's head (clue.heads): "classifier", "choices" or "spans"
    plain_text: tuple = ()       # what one line of plain text holds, tab-separated (clue-predict); () takes none
    json_lines: bool = True      # its files are JSON lines, read a part at a time (read(..., lines=)); else whole
    options: str | None = None   # head "choices": the record field listing the options the answer picks from

    @property
    def softmax_per_example(self):
        """True when the model gives one softmax per example (over the labels or the choices), as R-Drop's KL
        needs; span tasks (labels None) score pairs of positions instead."""
        return self.labels is not None

    def read(self, files, lines=None):
        """The records of one file or of a split's parts (c3's d- and m- files); ``lines``: (line number,
        object) pairs of the file read already, a part of it (``json_lines`` tasks: a stream read in parts)."""
        paths = [files] if isinstance(files, (str, Path)) else list(files)
        return self.reader(paths) if lines is None else self.reader(paths, lines=lines)

    def check(self, split, files, records):
        """Raise DataError naming the file and line of the first record ``split`` cannot use: in a
        labelled split (train, dev) every record carries its gold answer; then the task's own checks."""
        if split in LABELLED:
            unlabelled = [r for r in records if r.get(self.gold) in (None, [])]
            if unlabelled:
                path, line, counted = _counted(unlabelled, files, len(records),
                                               f"{self.name} {split} records have no {self.gold!r}")
                raise data.DataError(path, line, f"{counted}; a {split} file must be labelled")
        if self.check_split is not None:
            self.check_split(self, split, files, records)

    def find_files(self, folder):
        """{split: [path of each part found] or None} in ``folder``. A split's names are alternatives in
        order of preference, the first found wins; an alternative is a name, or a tuple of parts (c3's d-
        and m- files), each part a name or a tuple of names."""
        found = {}
        for split, alternatives in {**DEFAULT_FILES, **self.files}.items():
            found[split] = None
            for alternative in alternatives:
                parts = (alternative,) if isinstance(alternative, str) else alternative
                paths = [_first(Path(folder), (part,) if isinstance(part, str) else part) for part in parts]
                if any(paths):
                    found[split] = [p for p in paths if p]
                    break
        return found

    def file_names(self, split):
        """Every name ``find_files`` looks for in ``split``, for messages."""
        names = []
        for alternative in {**DEFAULT_FILES, **self.files}[split]:
            for part in (alternative,) if isinstance(alternative, str) else alternative:
                names += [part] if isinstance(part, str) else list(part)
        return names

    def test_outputs(self, folder):
        """[(test file parts, leaderboard file name)] for every output whose test file is in ``folder``."""
        files = self.find_files(folder)
        return [(files[o.split], o.name) for o in self.outputs if files.get(o.split)]

    def output_names(self, board=None):
        return tuple(o.name for o in self.outputs if board is None or o.board == board)


DEFAULT_FILES = {"train": ("train.json",), "dev": ("dev.json",), "test": ("test.json",)}
LABELLED = ("train", "dev")   # the splits trained and scored on: every record needs its gold answer
VERSIONED = {"test": ("test1.1.json", "test.json"), "test1.0": ("test1.0.json",)}   # CLUE 1.1 and 1.0 test sets


def _first(folder, names):
    return next((folder / n for n in names if (folder / n).is_file()), None)


def _one(load):
    """A reader for tasks whose splits are single files."""
    def read(paths, **options):
        if len(paths) != 1:
            raise ValueError(f"one file expected, got {len(paths)}: {', '.join(map(str, paths))}")
        return load(paths[0], **options)
    return read


def _classification(fields, labels):
    return _one(lambda path, **options: data.load_classification(path, fields, labels, **options))


def _where(record, files):
    """The file a record was read from: its own ``_path`` (a split of several parts), else the split's file."""
    return record.get("_path", files[0])


def _counted(found, files, total, what):
    """Where ``found`` (records) is not empty: (file, line of the first, message counting them)."""
    return _where(found[0], files), found[0].get("_line"), f"{len(found)} of {total} {what} (the first is here)"


def _chid(path, lines=None):
    """ChID blanks, labelled from ``<name>_answer.json`` beside the file when there is one (train, dev);
    every line has one candidate per label."""
    answers = Path(path).with_name(f"{Path(path).stem}_answer.json")
    return data.load_chid(path, answers if answers.is_file() else None, candidates=len(TASKS["chid"].labels),
                          lines=lines)


def _cmrc2018_answers(task, split, files, records):
    """A train question's first answer must be in its context (at its offset or elsewhere: the official
    offsets are a little off in 21 train questions); otherwise it would train as a question without one."""
    if split != "train":   # dev answers are only compared as text (193 extra dev answers are paraphrases)
        return
    lost = [r for r in records if not (r["answers"][0].strip() and r["answers"][0] in r["context"])]
    if lost:
        raise data.DataError(*_counted(lost, files, len(records), f"{split} answers are not in their context"))


def _c3_choices(task, split, files, records):
    """At most one choice per label: an error in a labelled split; CLUE's test1.1 has 6 questions with 5 to
    10 choices, of which only the first ones are scored (a counted warning)."""
    most = len(task.labels)
    over = [r for r in records if len(r["choices"]) > most]
    if not over:
        return
    path, line, message = _counted(over, files, len(records), f"{split} questions have more than {most} choices")
    if split in LABELLED:
        raise data.DataError(path, line, message)
    print(f"warning: {path}:{line}: {message}; only their first {most} are scored", file=sys.stderr)


def _versioned(prefix):
    return (Output(f"{prefix}11_predict.json"), Output(f"{prefix}10_predict.json", "test1.0", None))


def _c3_parts(split):
    """CLUE's d-/m- files, or the upstream c3-d-/c3-m- ones."""
    return (f"d-{split}.json", f"c3-d-{split}.json"), (f"m-{split}.json", f"c3-m-{split}.json")


TASKS = {t.name: t for t in (
    Task("afqmc", "tasks/afqmc.py", _classification(("sentence1", "sentence2"), ("0", "1")), ("0", "1"),
         "accuracy", (Output("afqmc_predict.json"),), demo=demo.make_afqmc,
         zip_sha256=(("5a4cb1556b833010c329fa2ad2207d9e98fc94071b7e474015e9dd7c385db4dc", 1195044, "HF-a, HF-b"),),
         zip_md5=(("3377b559bb4e61d03a35282550902ca0", "Paddle"),),
         paddlenlp_grid=PADDLENLP_CLASSIFICATION, plain_text=("sentence1", "sentence2")),
    Task("tnews", "tasks/tnews.py", _classification(("sentence",), TNEWS_LABELS), TNEWS_LABELS, "accuracy",
         _versioned("tnews"), files={**VERSIONED, "labels": ("labels.json",)},
         zip_sha256=(("2469c4205606e24118c7de08199fbd55da483b65128e1d9c1f380849797f6ce0", 4689325, "HF-a"),
                     ("77c476e70cfe0b014a81b84c6e1db2142a8a2f52f4ae0a8216aa75e673933462", 5123575, "HF-b")),
         zip_md5=(("587171233c8e8db00a3dc9bae5d2b47d", "Paddle"),),
         paddlenlp_grid=PADDLENLP_CLASSIFICATION, plain_text=("sentence",)),
    Task("iflytek", "tasks/iflytek.py", _classification(("sentence",), tuple(map(str, range(119)))),
         tuple(map(str, range(119))), "accuracy", (Output("iflytek_predict.json"),),
         files={"labels": ("labels.json",)},
         zip_sha256=(("c59b961b29f1d0bad0c5e01aa62e4a61a80e9cfb980ce89b06c000851fbb3b06", 6505938, "HF-a, HF-b"),),
         zip_md5=(("19e4b19947db126f69aae18db0da2b87", "Paddle"),),
         paddlenlp_grid=PADDLENLP_CLASSIFICATION, plain_text=("sentence",)),
    Task("cmnli", "tasks/cmnli.py", _classification(("sentence1", "sentence2"), NLI_LABELS), NLI_LABELS,
         "accuracy", (Output("cmnli_predict.json", board=None),),
         zip_sha256=(("3a3f3b1d3d27134cf11e585156f07fa050bd0a0836821c02696af0dbaa14513b", 31404066, "HF-a, HF-b"),),
         zip_md5=(("e0e8caefd9b3491220c18b466233f2ff", "Paddle"),),
         paddlenlp_grid=PADDLENLP_CLASSIFICATION, plain_text=("premise", "hypothesis")),
    Task("ocnli", "tasks/ocnli.py", _classification(("sentence1", "sentence2"), NLI_LABELS), NLI_LABELS,
         "accuracy", (Output("ocnli_50k_predict.json"),), files={"train": ("train.50k.json", "train.json")},
         zip_md5=(("acb426f6f3345076c6ce79239e7bc307", "Paddle"),),
         paddlenlp_grid=PADDLENLP_CLASSIFICATION, plain_text=("premise", "hypothesis")),
    Task("cluewsc2020", "tasks/wsc.py", _one(lambda path, **options: data.load_wsc(path, ("true", "false"), **options)),
         ("true", "false"), "accuracy", _versioned("cluewsc"), files=VERSIONED, epochs=30,
         zip_sha256=(("5e318e8c2c88256ea66819a24348a65d0824ade15c0f02c5a14b78d240d38afb", 88526, "HF-a"),
                     ("ebe5f357b19392d601be401b2fd4246983f534809a078eab7bda1de418fb3ffe", 281384, "HF-b")),
         zip_md5=(("17abe1be3f7dd3bad5f114ba4c40ee9b", "Paddle"),),
         paddlenlp_grid=PADDLENLP_WSC, plain_text=("text with its spans marked",)),
    Task("csl", "tasks/csl.py", _classification({"abst": str, "keyword": list}, ("0", "1")), ("0", "1"),
         "accuracy", (Output("csl_predict.json"),),
         zip_sha256=(("795d1a2e475d59acad8236f6c5baba7a0b43d3e0508cb60f15ffbc76d5f437c4", 3234594, "HF-a, HF-b"),),
         zip_md5=(("394a2ccbf6ddd7e331be4d5d7798f0f6", "Paddle"),),
         paddlenlp_grid=PADDLENLP_CLASSIFICATION, plain_text=("keywords joined by ；", "abstract")),
    # reading comprehension, multiple choice and NER; defaults as the bert4keras baselines
    Task("cmrc2018", "tasks/cmrc2018.py", _one(data.load_cmrc2018), None, "cmrc2018_em",
         (Output("cmrc2018_predict.json"),), answer="text", gold="answers", style="object",
         files={split: (f"{split}.json", f"cmrc2018_{split}.json") for split in ("train", "dev", "test", "trial")},
         maxlen=512, batch_size=16, grad_accum=2, check_split=_cmrc2018_answers, head="spans",
         plain_text=("question", "context"), json_lines=False,
         zip_sha256=(("6c63dc27e728ec5231aeb7d2861b4c90b6c116390582e0c44416cf3edf030b16", 3405146, "HF-a, HF-b"),),
         paddlenlp_grid=PADDLENLP_READING),
    Task("chid", "tasks/chid.py", _one(_chid), tuple(map(str, range(10))), "accuracy", _versioned("chid"),
         answer="candidate", style="object", files=VERSIONED, epochs=5, maxlen=64, batch_size=12, grad_accum=2,
         head="choices", options="candidates",
         zip_sha256=(("4cdf93c0a9dfa43113284c501d8948bbc17bd6a55e3b0b4314a31909562ec19d", 133322133, "HF-a"),
                     ("be02dbcc41a9c237542141f53836e70a209f7a686cf894891411c7e5534f73a4", 139199202, "HF-b")),
         paddlenlp_grid=PADDLENLP_READING),
    Task("c3", "tasks/c3.py", data.load_c3, ("0", "1", "2", "3"), "accuracy", _versioned("c3"),
         files={"train": (_c3_parts("train"),), "dev": (_c3_parts("dev"),),
                "test": ("test1.1.json", "test.json", _c3_parts("test")), "test1.0": ("test1.0.json",)},
         maxlen=512, batch_size=4, grad_accum=4, check_split=_c3_choices, head="choices", json_lines=False,
         options="choices",
         zip_sha256=(("15e98a52512116efc2382c82496069ae75b7944cbd144230ef0f7f8150a1de7c", 3200727, "HF-a"),
                     ("20dfa683c57c9795129e22d8dd0c299d6b2a29fbc84758ef2ebdb8b2904d7e12", 3495930, "HF-b")),
         paddlenlp_grid=PADDLENLP_READING),
    Task("cluener", "tasks/cluener.py", _one(lambda path, **options: data.load_cluener(path, CLUENER_TYPES, **options)),
         None, "cluener_f1", (Output("cluener_predict.json", board=CLUENER),), answer="entities", maxlen=256,
         head="spans", plain_text=("text",)),
)}


def get(name):
    """The Task for a data folder name (``cluewsc2020``) or a script name (``wsc``)."""
    if name in TASKS:
        return TASKS[name]
    for task in TASKS.values():
        if Path(task.script).stem == name:
            return task
    names = [*TASKS, *(Path(t.script).stem for t in TASKS.values())]
    close = difflib.get_close_matches(str(name), names, n=1)
    raise KeyError(f"unknown task {name!r}{f' (did you mean {close[0]}?)' if close else ''}; "
                   f"known: {', '.join(TASKS)}")


def board_files(board):
    """The leaderboard file names of a submission (``CLUE11`` or ``CLUENER``), in table order."""
    return tuple(name for task in TASKS.values() for name in task.output_names(board))
