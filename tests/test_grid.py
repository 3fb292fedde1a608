"""clue-run --grid: the spec read and checked against the task flags, PaddleNLP's grid per task, and a 2x2
grid on small real AFQMC data (tiny preset) killed after its first run, which, run again, ends with the
ledger and winner of an uninterrupted grid; the winner is the argmax of the ledger and makes results/."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clue import cli, grid, registry, run_all

REPO = Path(__file__).resolve().parents[1]


def parser(name="afqmc"):
    return cli.build_parser(registry.get(name))


def test_spec_gives_every_combination_in_order():
    axes = grid.parse("lr=1e-5,2e-5 batch-size=16,32 --pooling=avg", parser())
    assert axes == [("lr", ("1e-5", "2e-5")), ("batch_size", ("16", "32")), ("pooling", ("avg",))]
    combos = grid.combinations(axes)
    assert [grid.folder(c) for c in combos] == [
        "lr=1e-5,batch_size=16,pooling=avg", "lr=1e-5,batch_size=32,pooling=avg",
        "lr=2e-5,batch_size=16,pooling=avg", "lr=2e-5,batch_size=32,pooling=avg"]
    assert grid.flags(combos[1]) == ["--lr", "1e-5", "--batch-size", "32", "--pooling", "avg"]
    assert grid.folder({}) == "default"


@pytest.mark.parametrize("spec, message", [
    ("lr=x", "--lr 'x' is not a valid value"),
    ("optimizer=sgd", "--optimizer 'sgd' is not one of adafactor, adamw"),
    ("foo=1", "'foo' is not a task flag that takes a value"),
    ("resume=1", "resume cannot be in a grid"),
    ("seed=1,2", "seed cannot be in a grid (use --seeds)"),
    ("lr=", "'lr=' gives no values"),
    ("lr=1e-5 lr=2e-5", "lr is given twice"),
    ("lr=1e-5,1e-5", "lr repeats a value"),
])
def test_bad_specs_are_refused(spec, message):
    with pytest.raises(grid.GridError, match=message.replace("(", r"\(").replace(")", r"\)")):
        grid.parse(spec, parser())


def test_a_grid_flag_given_twice_is_a_flag_error(capsys):
    with pytest.raises(SystemExit):
        run_all.parse_args(["afqmc", "--model", "tiny", "--lr", "1e-3", "--grid", "lr=1e-3,2e-3"])
    assert "--grid varies lr, also given as a flag" in capsys.readouterr().err


def test_paddlenlp_grid_per_task():
    def combos(name):
        return grid.combinations(grid.axes_for("paddlenlp", registry.get(name), parser(name)))

    afqmc = combos("afqmc")
    assert len(afqmc) == 12 and all(c["optimizer"] == "adamw" and c["grad_accum"] == "1" for c in afqmc)
    assert {(c["lr"], c["batch_size"]) for c in afqmc} == {(lr, bs) for lr in ("1e-5", "2e-5", "3e-5", "5e-5")
                                                          for bs in ("16", "32", "64")}
    assert {c["batch_size"] for c in combos("cluewsc2020")} == {"8", "16", "32", "64"}     # wsc also at 8
    for name in ("cmrc2018", "chid", "c3"):
        assert {(c["lr"], c["batch_size"]) for c in combos(name)} == {(lr, bs) for lr in ("1e-5", "2e-5", "3e-5")
                                                                     for bs in ("24", "32")}
    assert combos("cluener") == [{}]       # not in PaddleNLP's benchmark: one run, as without a grid
    for name in registry.TASKS:            # every value is one the task script takes
        for axis in grid.axes_for("paddlenlp", registry.get(name), parser(name)):
            grid.parse(f"{axis[0]}={','.join(axis[1])}", parser(name))


@pytest.fixture(scope="module")
def data(tmp_path_factory, clue_data_dir):
    root = tmp_path_factory.mktemp("grid_data")
    folder = root / "afqmc"
    folder.mkdir()
    dev = [x for x in (clue_data_dir / "afqmc" / "dev.json").read_text(encoding="utf-8").split("\n") if x]
    (folder / "train.json").write_text("\n".join(dev[:96]) + "\n", encoding="utf-8")
    (folder / "dev.json").write_text("\n".join(dev[96:144]) + "\n", encoding="utf-8")
    test = [x for x in (clue_data_dir / "afqmc" / "test.json").read_text(encoding="utf-8").split("\n") if x]
    (folder / "test.json").write_text("\n".join(test[:24]) + "\n", encoding="utf-8")
    return root


def argv(data, out):
    return ["afqmc", "--model", "tiny", "--grid", "lr=1e-4,3e-3 batch_size=4,16", "--data-dir", str(data),
            "--output-dir", str(out), "--epochs", "1", "--maxlen", "48", "--quiet",
            # AdamW: a random-init model learns with it (AdaFactor's steps are sized for fine-tuning), so the
            # combinations score differently and the winner is tested
            "--", "--verbose", "0", "--optimizer", "adamw"]


def test_killed_grid_resumes_to_the_ledger_and_winner_of_an_uninterrupted_one(data, tmp_path, capsys):
    killed = tmp_path / "killed"
    ledger_path = killed / "grid" / "ledger.json"
    # the whole runner is killed once the ledger shows its first run finished (a crash or a lost machine)
    runner = subprocess.Popen([sys.executable, str(REPO / "scripts" / "run_clue.py"), *argv(data, killed)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline, rows = time.time() + 600, []
    while runner.poll() is None and time.time() < deadline:
        if ledger_path.is_file():
            rows = json.loads(ledger_path.read_text())["tasks"]["afqmc"]["rows"]
            if any(r["status"] == "done" for r in rows):
                os.killpg(runner.pid, signal.SIGKILL)
                break
        time.sleep(0.05)
    runner.wait()
    assert [r["status"] for r in rows][0] == "done" and [r["status"] for r in rows][1:] == ["not run"] * 3

    assert run_all.main(argv(data, killed)) == 0
    printed = capsys.readouterr().out
    assert "== afqmc [lr=1e-4,batch_size=4]: skip (finished" in printed

    whole = tmp_path / "whole"
    assert run_all.main(argv(data, whole)) == 0
    assert ledger_path.read_text() == (whole / "grid" / "ledger.json").read_text()
    assert (killed / "grid" / "ledger.md").read_text() == (whole / "grid" / "ledger.md").read_text()

    # the winner is the argmax of the ledger's means (the first on ties), and its files make results/
    entry = json.loads(ledger_path.read_text())["tasks"]["afqmc"]
    means = [r["mean"] for r in entry["rows"]]
    assert all(r["status"] == "done" and r["dev"] == [r["mean"]] for r in entry["rows"])
    assert len(set(means)) > 1, "every combination scored the same: the winner would not be tested"
    assert entry["winner"] == means.index(max(means))
    winner = entry["rows"][entry["winner"]]
    state = json.loads((killed / winner["folder"] / "logs" / "afqmc.state.json").read_text())
    assert winner["mean"] == round(100 * state["best"], 2)
    for out in (killed, whole):
        assert ((out / "results" / "afqmc_predict.json").read_bytes()
                == (killed / winner["folder"] / "results" / "afqmc_predict.json").read_bytes())
        result = json.loads((out / "results" / "summary.json").read_text())
        assert result["grid"]["winners"] == {"afqmc": winner["combination"]}
        assert result["tasks"]["afqmc"]["dev"] == winner["mean"]
