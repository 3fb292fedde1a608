"""clue-predict (also ``scripts/predict.py``): a trained run's answers for new inputs, one JSON line each.

    clue-predict tnews --run runs/rbt --input titles.txt --output labels.jsonl --top-k 3
    clue-predict cmrc2018 --run runs/rbt --input ~/clue_data/cmrc2018/cmrc2018_dev.json
    printf '花呗怎么还款\t花呗如何还钱\n' | clue-predict afqmc --run runs/rbt

Input (``--input``, default stdin): the task's own files as ``clue.data`` reads them (JSON lines; cmrc2018's
SQuAD file and c3's JSON file, from a file only) or plain text, one input a line: a text, or tab-separated
texts where the task takes several (``clue.registry`` Task.plain_text: a pair for afqmc, question and
context for cmrc2018). JSON lines and plain text are read, predicted and written a chunk at a time.
Output (``--output``, default stdout), one line per input: its ``id`` where it has one, then what
``clue.predict`` answers: classification ``label`` and ``probability`` (``top`` with --top-k), cmrc2018
``answer`` with its ``start`` and ``end`` character (inclusive), cluener ``entities``, c3 and chid the
chosen option's ``index`` and ``text`` with the options' ``probabilities``. An output file is written
whole or not at all. Bad input ends with ``error: <file>:<line>: <what>`` and exit status 1.
"""

import argparse
import contextlib
import itertools
import json
import os
import sys
from pathlib import Path

from clue import cli, registry, run_files
from clue.data import DataError, parse_json_line, text_lines
from clue.paths import MissingPathError, atomic_path

STDIN = "<stdin>"
CHUNK_BATCHES = 50   # batches per chunk read, predicted and written at a time (as clue.batching.BUCKET)


def build_parser():
    p = argparse.ArgumentParser(prog="clue-predict", description="Predict with a trained run: one JSON line of "
                                "answers per input line (or per record of the task's JSON file).",
                                formatter_class=cli.DefaultsHelpFormatter)
    p.add_argument("task", help=f"task name or script name ({', '.join(registry.TASKS)})")
    p.add_argument("--run", required=True, help="the run's --output-dir (its weights/<task>.model.json)")
    p.add_argument("--input", default="-", help="the task's JSON lines (or JSON file), or plain text: one "
                                                "input a line, several texts tab-separated; - for stdin")
    p.add_argument("--output", default="-", help="JSON lines written here (whole or not at all); - for stdout")
    p.add_argument("--top-k", type=int, default=1, help="classification and cmrc2018: also the K best answers")
    p.add_argument("--batch-size", type=int, help="examples per batch (default: the run's)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (none either when stderr is no terminal)")
    return p


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.task = registry.get(args.task)
    except KeyError as err:
        parser.error(err.args[0])
    if args.top_k < 1 or args.batch_size is not None and args.batch_size < 1:
        parser.error("--top-k and --batch-size must be at least 1")
    if args.top_k > 1 and not (args.task.head == "classifier" or args.task.answer == "text"):
        parser.error(f"--top-k does not apply to {args.task.name} (classification and cmrc2018 only)")
    return args


def inputs(task, name, stream, chunk):
    """The inputs of ``stream`` (named ``name``) in lists of about ``chunk``: records as the task's reader
    reads them, or tuples of texts from plain-text lines (a first line opening with "{" or "[" is JSON); a
    whole-file JSON format (cmrc2018, c3) is read from ``name``."""
    lines = ((number, line) for number, line in text_lines(name, stream) if line.strip())
    first = next(lines, None)
    if first is None:
        return
    lines = itertools.chain([first], lines)
    if first[1].lstrip()[:1] in ("{", "["):
        if not task.json_lines:
            if name == STDIN:
                plain = f"; stdin takes plain text ({'<TAB>'.join(task.plain_text)})" if task.plain_text else ""
                raise DataError(name, first[0], f"{task.name}'s JSON file is read from a file (--input FILE){plain}")
            records = task.read(name)
            for start in range(0, len(records), chunk):
                yield records[start:start + chunk]
            return
        while part := list(itertools.islice(lines, chunk)):
            yield task.read(name, lines=[(number, parse_json_line(name, number, line)) for number, line in part])
        return
    if not task.plain_text:
        raise DataError(name, first[0], f"{task.name} reads JSON (its own files' format), not plain text")
    while part := list(itertools.islice(lines, chunk)):
        yield [plain_texts(task, name, number, line) for number, line in part]


def plain_texts(task, name, number, line):
    texts = tuple(line.split("\t"))
    if len(texts) != len(task.plain_text):
        expected = (f"{len(task.plain_text)} tab-separated texts ({'<TAB>'.join(task.plain_text)})"
                    if len(task.plain_text) > 1 else f"one text ({task.plain_text[0]}) without a tab")
        raise DataError(name, number, f"{task.name} takes {expected} a line, got {len(texts)}")
    return texts


def answer_lines(predictor, items, top_k, batch_size):
    """The output lines of ``items`` (a chunk of inputs)."""
    options = {"batch_size": batch_size, **({"top_k": top_k} if top_k > 1 else {})}
    for item, found in zip(items, predictor.predict(items, **options)):
        ident = {"id": item["id"]} if isinstance(item, dict) and "id" in item else {}
        yield json.dumps({**ident, **found}, ensure_ascii=False) + "\n"


@contextlib.contextmanager
def output(path, stdout):
    """A text file to write the output lines to: ``stdout``, or a temporary file renamed to ``path`` when
    the block ends (removed when it raises)."""
    if path == "-":
        yield stdout
        stdout.flush()
        return
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def predict(argv=None):
    args = parse_args(argv)
    task = args.task
    run_files.find_description(args.run, task.name)   # before the seconds TensorFlow takes to import
    if args.input != "-" and not Path(args.input).is_file():
        raise MissingPathError(f"{args.input}: no such input file")
    stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):   # the readers' notes, and anything else, are not output
        cli.import_keras(verbose=0)
        from tqdm import tqdm

        from clue import predict as api

        predictor = api.load(args.run, task.name)
        batch_size = args.batch_size or predictor.batch_size
        name = STDIN if args.input == "-" else args.input
        with contextlib.ExitStack() as stack:
            stream = sys.stdin.buffer if args.input == "-" else stack.enter_context(open(args.input, "rb"))
            out = stack.enter_context(output(args.output, stdout))
            progress = stack.enter_context(tqdm(unit=" inputs", file=sys.stderr, dynamic_ncols=True,
                                                disable=args.quiet or not sys.stderr.isatty()))
            for items in inputs(task, name, stream, batch_size * CHUNK_BATCHES):
                out.writelines(answer_lines(predictor, items, args.top_k, batch_size))
                progress.update(len(items))


def main(argv=None):
    """clue-predict's command line; bad input or a missing run ends with one ``error:`` line, exit 1."""
    cli.run(lambda: predict(argv))


if __name__ == "__main__":
    main()
