"""A task script run from the shell ends a missing path, bad data or bad checkpoint with one message."""

import pytest

from clue import cli
from clue.checkpoints import CheckpointError
from clue.data import DataError
from clue.paths import MissingPathError


@pytest.mark.parametrize("error", [
    MissingPathError("no data folder for task 'afqmc': looked for x/afqmc"),
    DataError("dev.json", 7, "not valid JSON"),
    CheckpointError("ckpt: missing variable bert/embeddings/word_embeddings"),
])
def test_known_errors_exit_with_their_message(error):
    def main():
        raise error

    with pytest.raises(SystemExit) as exit_info:
        cli.run(main)
    assert exit_info.value.code == f"error: {error}"   # printed to stderr, exit status 1


def test_other_errors_keep_their_traceback():
    def main():
        raise ZeroDivisionError("a bug, not bad input")

    with pytest.raises(ZeroDivisionError):
        cli.run(main)


def test_every_task_script_uses_it():
    from pathlib import Path
    for script in sorted((Path(__file__).resolve().parents[1] / "tasks").glob("*.py")):
        assert script.read_text(encoding="utf-8").rstrip().endswith("cli.run(main)"), script.name
