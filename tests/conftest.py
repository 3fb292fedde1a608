"""Shared test fixtures: the real CLUE files and vocabulary in ../shared, and the bert4keras oracle.

A test that needs ../shared fails in CI (CI=true) when it is missing and is skipped elsewhere.
"""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # so tests can import the helpers beside them

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _shared_root():
    return Path(os.environ.get("CLUE_SHARED_DIR", REPO.parent / "shared"))


def _need(path, what):
    if not path.exists():
        message = f"{what} not found at {path} (set CLUE_SHARED_DIR / CLUE_DATA_DIR to the shared folder)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def clue_data_dir():
    """../shared/clue_data (or $CLUE_DATA_DIR): the real CLUE files, read-only."""
    path = Path(os.environ["CLUE_DATA_DIR"]) if os.environ.get("CLUE_DATA_DIR") else _shared_root() / "clue_data"
    return _need(path, "the shared CLUE data")


@pytest.fixture(scope="session")
def vocab_path():
    """The real 21,128-token Chinese BERT vocabulary."""
    return _need(_shared_root() / "vocab" / "chinese_bert_vocab.txt", "the shared Chinese BERT vocabulary")


@pytest.fixture(scope="session")
def afqmc_run(tmp_path_factory, clue_data_dir):
    """(argv, output folder, printed dev score) of one tiny afqmc run on the real data, trained once for the
    test files that read what it left; a test that changes the folder puts it back as it was."""
    from tiny_runs import afqmc_run

    return afqmc_run(tmp_path_factory.mktemp("afqmc"), clue_data_dir)
