"""Per-task facts shared by the task scripts, the submission checker and the benchmark runner.

One ``Task`` per CLUE task, keyed by its data folder name (``clue.paths.TASKS``): the script that runs it,
the labels it predicts, the dev metric, and which test file becomes which leaderboard file.
"""

from dataclasses import dataclass
from pathlib import Path

NLI_LABELS = ("entailment", "neutral", "contradiction")
# PaddleNLP's CLUE grid (examples/benchmark/clue/README.md): learning rate x batch size, classification and
# reading comprehension apart, CLUEWSC2020 also at batch size 8; cluener is not in that benchmark.
PADDLENLP_CLASSIFICATION = (("lr", ("1e-5", "2e-5", "3e-5", "5e-5")), ("batch_size", ("16", "32", "64")))
PADDLENLP_WSC = (("lr", ("1e-5", "2e-5", "3e-5", "5e-5")), ("batch_size", ("8", "16", "32", "64")))
PADDLENLP_READING = (("lr", ("1e-5", "2e-5", "3e-5")), ("batch_size", ("24", "32")))
TNEWS_LABELS = ("100", "101", "102", "103", "104", "106", "107", "108", "109", "110",
                "112", "113", "114", "115", "116")   # the 15 codes of tnews labels.json (105, 111 unused)


@dataclass(frozen=True)
class Output:
    """A leaderboard file and the test files it is predicted from (the first one found wins)."""

    name: str            # e.g. "tnews11_predict.json"
    tests: tuple         # e.g. ("test1.1.json", "test.json")


@dataclass(frozen=True)
class Task:
    name: str                    # data folder name, as in clue.paths.TASKS
    script: str                  # path of the task script inside the repository
    labels: tuple | None         # the label strings a prediction may take; None where open (spans, NER)
    metric: str                  # a name in clue.metrics.METRICS
    outputs: tuple               # Output entries
    epochs: int = 10             # default --epochs
    maxlen: int = 128            # default --maxlen
    batch_size: int = 32         # default --batch-size
    grad_accum: int = 1          # default --grad-accum
    style: str = "lines"         # "lines": one {"id", "label"} object per line; "object": one JSON object
    paddlenlp_grid: tuple = ()   # clue-run --grid paddlenlp: ((flag, values), ...)

    def test_outputs(self, task_dir):
        """[(test file, output file name)] for every output whose test file exists in ``task_dir``."""
        found = []
        for output in self.outputs:
            path = next((Path(task_dir) / t for t in output.tests if (Path(task_dir) / t).is_file()), None)
            if path is not None:
                found.append((path, output.name))
        return found

    def output_names(self):
        return tuple(o.name for o in self.outputs)


def _test(name):
    return (Output(name, ("test.json",)),)


def _versioned(prefix):
    """CLUE 1.1 (test.json / test1.1.json) and, when present, CLUE 1.0 (test1.0.json)."""
    return (Output(f"{prefix}11_predict.json", ("test1.1.json", "test.json")),
            Output(f"{prefix}10_predict.json", ("test1.0.json",)))


TASKS = {t.name: t for t in (
    Task("afqmc", "tasks/afqmc.py", ("0", "1"), "accuracy", _test("afqmc_predict.json"),
         paddlenlp_grid=PADDLENLP_CLASSIFICATION),
    Task("tnews", "tasks/tnews.py", TNEWS_LABELS, "accuracy", _versioned("tnews"),
         paddlenlp_grid=PADDLENLP_CLASSIFICATION),
    Task("iflytek", "tasks/iflytek.py", tuple(str(i) for i in range(119)), "accuracy",
         _test("iflytek_predict.json"), paddlenlp_grid=PADDLENLP_CLASSIFICATION),
    Task("cmnli", "tasks/cmnli.py", NLI_LABELS, "accuracy", _test("cmnli_predict.json"),
         paddlenlp_grid=PADDLENLP_CLASSIFICATION),
    Task("ocnli", "tasks/ocnli.py", NLI_LABELS, "accuracy", _test("ocnli_50k_predict.json"),
         paddlenlp_grid=PADDLENLP_CLASSIFICATION),
    Task("cluewsc2020", "tasks/wsc.py", ("true", "false"), "accuracy", _versioned("cluewsc"), epochs=30,
         paddlenlp_grid=PADDLENLP_WSC),
    Task("csl", "tasks/csl.py", ("0", "1"), "accuracy", _test("csl_predict.json"),
         paddlenlp_grid=PADDLENLP_CLASSIFICATION),
    # reading comprehension and NER, defaults as the bert4keras baselines
    Task("cmrc2018", "tasks/cmrc2018.py", None, "cmrc2018_em",
         (Output("cmrc2018_predict.json", ("test.json", "cmrc2018_test.json")),), style="object",
         maxlen=512, batch_size=16, grad_accum=2, paddlenlp_grid=PADDLENLP_READING),
    Task("chid", "tasks/chid.py", tuple(str(i) for i in range(10)), "accuracy", _versioned("chid"),
         style="object", epochs=5, maxlen=64, batch_size=12, grad_accum=2,
         paddlenlp_grid=PADDLENLP_READING),
    # c3: CLUE's test1.1/test1.0, else the upstream test set in two parts (d-test is found, m-test joins it)
    Task("c3", "tasks/c3.py", ("0", "1", "2", "3"), "accuracy",
         (Output("c311_predict.json", ("test1.1.json", "test.json", "d-test.json", "c3-d-test.json")),
          Output("c310_predict.json", ("test1.0.json",))), maxlen=512, batch_size=4, grad_accum=4,
         paddlenlp_grid=PADDLENLP_READING),
    Task("cluener", "tasks/cluener.py", None, "cluener_f1", _test("cluener_predict.json"), maxlen=256),
)}


def get(name):
    """The Task for a data folder name (``cluewsc2020``) or a script name (``wsc``)."""
    if name in TASKS:
        return TASKS[name]
    for task in TASKS.values():
        if Path(task.script).stem == name:
            return task
    raise KeyError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
