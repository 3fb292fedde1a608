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


def test_every_task_script_run_as_a_program_ends_bad_input_with_its_message(tmp_path, monkeypatch):
    import runpy
    import sys
    from pathlib import Path

    scripts = sorted((Path(__file__).resolve().parents[1] / "tasks").glob("*.py"))
    assert len(scripts) == 11
    for script in scripts:   # as `python tasks/<name>.py --data-dir <nowhere>` runs it, in this process
        monkeypatch.setattr(sys, "argv", [str(script), "--data-dir", str(tmp_path / "nowhere"), "--model", "tiny",
                                          "--output-dir", str(tmp_path / "out")])
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(script), run_name="__main__")
        assert str(exit_info.value.code).startswith("error: no data folder for task"), script.name
