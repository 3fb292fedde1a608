"""Tiny trained runs on the real data, for the tests of what a run leaves (test_run_files, test_export)."""

import contextlib
import io
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tasks"))

FLAGS = ["--model", "tiny", "--epochs", "1", "--limit", "48", "--batch-size", "16", "--maxlen", "32",
         "--verbose", "0"]


def run_quietly(main, argv):
    """(what ``main(argv)`` returned, what it printed)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = main(argv)
    return result, printed.getvalue()


def afqmc_run(out, data_dir):
    """(argv, output folder, printed dev score) of one tiny afqmc run into ``out``."""
    import afqmc

    argv = [*FLAGS, "--data-dir", str(data_dir), "--output-dir", str(out)]
    score, _ = run_quietly(afqmc.main, argv)
    return argv, out, score
