"""run_clue: the nine CLUE 1.1 task scripts run once (tiny preset, one epoch, small real data), the
summary files checked against the scripts' own logs, finished tasks skipped, an interrupted one resumed."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import small_clue
from clue import registry, run_all
from clue.paths import OutputDirs

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def clue11(tmp_path_factory, clue_data_dir):
    return small_clue.clue11_run(tmp_path_factory, clue_data_dir)


def dev_column(out, task):
    """The dev metric per epoch, read from the task script's CSV log here, on its own."""
    with open(out / "logs" / f"{task.name}.csv", newline="") as f:
        rows = {int(r["epoch"]): float(r[f"val_{task.metric}"]) for r in csv.DictReader(f)}
    return [round(100 * rows[e], 2) for e in sorted(rows)]


def test_every_task_runs_and_is_summarised(clue11):
    data, out, code = clue11
    assert code == 0
    summary = json.loads((out / "results" / "summary.json").read_text())
    assert list(summary["tasks"]) == list(small_clue.CLUE11_TASKS)
    for name, row in summary["tasks"].items():
        task = registry.get(name)
        state = json.loads((out / "logs" / f"{name}.state.json").read_text())
        assert row["status"] == "done" and row["metric"] == task.metric == state["metric"]
        assert row["dev"] == round(100 * state["best"], 2) and row["epochs_done"] == 1
        assert row["dev_per_epoch"] == dev_column(out, task)
        assert row["outputs"] and all((out / "results" / o).is_file() for o in row["outputs"])
    mean = sum(r["dev"] for r in summary["tasks"].values()) / 9
    assert summary["clue_average"] == {"value": round(mean, 2), "tasks": sorted(small_clue.CLUE11_TASKS), "of": 9,
                                       "std": None, "per_seed": [round(mean, 2)], "ensemble": None,
                                       "published": None, "difference": None}     # tiny: nothing published

    table = (out / "results" / "summary.md").read_text().splitlines()
    for name, row in summary["tasks"].items():
        assert any(line.startswith(f"| {name} | {row['metric']} | {row['dev']:.2f} | 1 | 1/1 |") for line in table)
    assert table[-1].startswith(f"| **CLUE 1.1 average** (9 of 9 tasks) | | **{round(mean, 2):.2f}** |")

    import matplotlib.image
    png = out / "results" / "dev_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(png).shape[:2] == (500, 800)


def test_finished_tasks_are_skipped(clue11, capsys):
    data, out, _ = clue11
    records = {n: (out / "logs" / f"{n}.run.json").read_text() for n in small_clue.CLUE11_TASKS}
    logs = {n: (out / "logs" / f"{n}.out").read_text() for n in small_clue.CLUE11_TASKS}
    argv = [*small_clue.CLUE11_TASKS, "--data-dir", str(data), "--output-dir", str(out), *small_clue.RUN_FLAGS]
    assert run_all.main(argv) == 0
    printed = capsys.readouterr().out
    for name in small_clue.CLUE11_TASKS:
        assert f"== {name}: skip (finished " in printed
        assert (out / "logs" / f"{name}.run.json").read_text() == records[name]   # not run again
        assert (out / "logs" / f"{name}.out").read_text() == logs[name]


def test_decisions(tmp_path):
    dirs = OutputDirs(tmp_path).make()
    task, flags = registry.get("csl"), ["--model", "tiny"]

    def record(**fields):
        (dirs.logs / "csl.run.json").write_text(json.dumps({"flags": flags, **fields}))

    assert run_all.decide(task, flags, dirs) == ("fresh", "no earlier run")
    record(status="done", finished="today", outputs=["csl_predict.json"])
    (dirs.results / "csl_predict.json").write_text("{}\n")
    (dirs.weights / "csl_backup").mkdir()   # kept (--keep-backup)
    # a run recorded before the scores were kept is resumed to save them (it predicts again)
    assert run_all.decide(task, flags, dirs) == ("resume", "finished, but csl_predict.scores.npz is gone")
    (dirs.results / "csl_predict.scores.npz").write_bytes(b"")
    assert run_all.decide(task, flags, dirs) == ("skip", "finished today")
    (dirs.results / "csl_predict.json").unlink()
    assert run_all.decide(task, flags, dirs) == ("resume", "finished, but csl_predict.json is gone")
    # the backup deleted as a finished run does: predicting again from the best weights; neither: afresh
    (dirs.weights / "csl_backup").rmdir()
    assert run_all.decide(task, flags, dirs) == ("fresh", "finished, but csl_predict.json is gone, and so are "
                                                          "the best weights")
    (dirs.weights / "csl.weights.h5").write_bytes(b"")
    assert run_all.decide(task, flags, dirs) == ("resume", "finished, but csl_predict.json is gone: predicting "
                                                           "again from the best weights")
    (dirs.results / "csl_predict.json").write_text("{}\n")
    assert run_all.decide(task, flags, dirs, force=True) == ("fresh", "forced")
    assert run_all.decide(task, ["--model", "tiny", "--seed", "2"], dirs)[0] == "fresh"
    record(status="failed")
    assert run_all.decide(task, flags, dirs)[0] == "fresh"        # failed before any epoch was saved
    (dirs.logs / "csl.state.json").write_text("{}")
    assert run_all.decide(task, flags, dirs) == ("resume", "the earlier run ended failed")
    record(status="running")                                     # the runner itself was killed
    assert run_all.decide(task, flags, dirs) == ("resume", "the earlier run ended running")
    # the same training on another number of devices goes on from it
    assert run_all.decide(task, [*flags, "--devices", "2"], dirs) == ("resume", "the earlier run ended running")


def test_flags_reach_every_script_in_a_fixed_order():
    args = SimpleNamespace(model="tiny", model_dir=None, data_dir="d", epochs=2, batch_size=None, maxlen=64,
                           lr=None, limit=10, seed=None, devices=2, output_dir="o")
    assert run_all.task_flags(args, ["--pooling", "avg"]) == [
        "--model", "tiny", "--data-dir", "d", "--epochs", "2", "--maxlen", "64", "--limit", "10",
        "--devices", "2", "--output-dir", "o", "--pooling", "avg"]


def test_interrupted_task_is_resumed(tmp_path, clue_data_dir, capsys):
    data = tmp_path / "data" / "afqmc"
    data.mkdir(parents=True)
    dev = [x for x in (clue_data_dir / "afqmc" / "dev.json").read_text(encoding="utf-8").split("\n") if x]
    (data / "train.json").write_text("\n".join(dev[:400]) + "\n", encoding="utf-8")
    (data / "dev.json").write_text("\n".join(dev[400:424]) + "\n", encoding="utf-8")
    (data / "test.json").symlink_to(clue_data_dir / "afqmc" / "test.json")
    out = tmp_path / "out"
    argv = ["afqmc", "--data-dir", str(tmp_path / "data"), "--output-dir", str(out), "--model", "tiny",
            "--epochs", "4", "--limit", "400", "--maxlen", "48", "--batch-size", "16", "--quiet"]

    # the whole runner is killed (as by a crash or a lost machine) once the first epoch is saved. The CSV
    # row is the signal: Keras's CSVLogger writes it after BackupAndRestore has written its backup (a kill
    # while that backup is being written leaves a file Keras cannot read: see the report of issue 7)
    runner = subprocess.Popen([sys.executable, str(REPO / "scripts" / "run_clue.py"), *argv],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    state_path, csv_path = out / "logs" / "afqmc.state.json", out / "logs" / "afqmc.csv"
    deadline = time.time() + 300
    while runner.poll() is None and time.time() < deadline:
        if csv_path.is_file() and len(csv_path.read_text().splitlines()) >= 2:   # header + epoch 1
            os.killpg(runner.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    runner.wait()
    done = json.loads(state_path.read_text())["epochs_done"]
    assert 1 <= done < 4, "the run was not caught between its first and last epoch"
    assert json.loads((out / "logs" / "afqmc.run.json").read_text())["status"] == "running"
    assert not (out / "results" / "afqmc_predict.json").exists()

    assert run_all.main(argv) == 0
    assert "== afqmc: resume (the earlier run ended running)" in capsys.readouterr().out
    assert "resuming from the last finished epoch" in (out / "logs" / "afqmc.out").read_text()
    state = json.loads(state_path.read_text())
    assert state["epochs_done"] == 4 and len(state["history"]) == 4
    summary = json.loads((out / "results" / "summary.json").read_text())["tasks"]["afqmc"]
    assert summary["status"] == "done" and len(summary["dev_per_epoch"]) == 4
    assert summary["dev_per_epoch"] == dev_column(out, registry.get("afqmc"))
    assert sum(1 for _ in open(out / "results" / "afqmc_predict.json")) == 400   # --limit 400


def test_summary_reads_the_logs_of_earlier_runs(tmp_path):
    """Written logs as the task scripts leave them: csl run earlier (3 epochs, epoch 2 logged twice by a
    resume), afqmc asked for now but not run yet."""
    dirs = OutputDirs(tmp_path).make()
    (dirs.logs / "csl.run.json").write_text(json.dumps({"flags": ["--model", "tiny"], "status": "done",
                                                        "wall_s": 12.5}))
    (dirs.logs / "csl.state.json").write_text(json.dumps({"metric": "accuracy", "best": 0.625, "best_epoch": 3,
                                                          "epochs_done": 3, "epochs": 3}))
    (dirs.logs / "csl.csv").write_text("epoch,loss,val_accuracy\n0,0.7,0.5\n1,0.6,0.55\n1,0.6,0.575\n2,0.5,0.625\n")
    args = SimpleNamespace(model="tiny", model_dir=None, data_dir=None, epochs=None, batch_size=None,
                           maxlen=None, lr=None, limit=None, seed=None, output_dir=str(tmp_path), extra=[])
    summary = run_all.summarise(["afqmc"], args, dirs)
    assert list(summary["tasks"]) == ["afqmc", "csl"]                 # registry order
    assert summary["tasks"]["afqmc"]["status"] == "not run" and summary["tasks"]["afqmc"]["dev"] is None
    csl = summary["tasks"]["csl"]
    assert csl["dev_per_epoch"] == [50.0, 57.5, 62.5] and csl["dev"] == 62.5 and csl["best_epoch"] == 3
    assert {k: summary["clue_average"][k] for k in ("value", "tasks", "of")} == {"value": 62.5, "tasks": ["csl"],
                                                                                "of": 9}
    table = (dirs.results / "summary.md").read_text().splitlines()
    assert not any("Partial" in line for line in table)
    assert "| csl | accuracy | 62.50 | 3 | 3/3 | 12.5 | done |" in table
    assert "| afqmc | accuracy | - | - | - | - | not run |" in table
    assert table[-1].startswith("| **CLUE 1.1 average** (1 of 9 tasks) | | **62.50** |")
    assert (dirs.results / "dev_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_a_run_cut_short_by_limit_is_marked_partial_in_the_summary(tmp_path):
    from clue import demo

    data, out = tmp_path / "data", tmp_path / "out"
    demo.make_afqmc(data / "afqmc", seed=2, sizes={"train": 40, "dev": 16, "test": 24})
    flags = ["--data-dir", str(data), "--output-dir", str(out), "--model", "tiny", "--epochs", "1",
             "--maxlen", "32", "--batch-size", "8", "--quiet"]
    assert run_all.main(["afqmc", *flags, "--limit", "20"]) == 0
    state = json.loads((out / "logs" / "afqmc.state.json").read_text())
    assert state["partial"] == {"train.json": [20, 40], "test.json": [20, 24]}   # dev (16) is whole
    table = (out / "results" / "summary.md").read_text()
    assert ("**Partial runs** (--limit cut these files): afqmc (train.json 20 of 40, test.json 20 of 24)."
            in table), table
    # a --limit no smaller than every file cuts nothing: not partial
    from clue import cli

    whole = cli.start("afqmc", ["--data-dir", str(data), "--output-dir", str(tmp_path / "whole"), "--model", "tiny",
                                "--limit", "40"])
    assert whole.partial == {} and len(whole.read("train")) == 40


def test_quiet_run_says_why_a_task_failed_and_not_to_resume_bad_input(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "afqmc").mkdir(parents=True)   # the folder is there, its files are not
    code = run_all.main(["afqmc", "--data-dir", str(data), "--output-dir", str(tmp_path / "out"), "--model", "tiny",
                         "--quiet"])
    out = capsys.readouterr().out
    assert code == 1
    failed = [line for line in out.splitlines() if line.startswith("failed: ")]
    assert len(failed) == 1 and failed[0].startswith("failed: afqmc: error: afqmc: no train file in"), out
    assert failed[0].endswith("(fix that, then rerun the same command)") and "resume" not in failed[0]
    assert "== afqmc: FAILED: error: afqmc: no train file" in out


def test_a_task_name_typo_is_one_line_with_the_close_name(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_all.main(["afqcm", "--model", "tiny"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "did you mean afqmc?" in err[-1] and "Traceback" not in "\n".join(err), err


def test_dev_curves_legend_covers_no_curve_and_epochs_are_whole_numbers():
    from clue import summary as summary_module

    runs = {name: {"metric": "accuracy", "runs": [{"dev_per_epoch": curve}]} for name, curve in
            (("afqmc", [70.1, 72.4, 73.0, 73.2, 73.1]), ("tnews", [55.0, 56.2, 57.1, 56.9, 57.3]),
             ("cmrc2018", [60.0, 65.5, 68.0, 69.2, 70.1]))}
    fig = summary_module.curves_figure({"model": "tiny", "tasks": runs})
    fig.canvas.draw()
    ax, = fig.axes
    renderer = fig.canvas.get_renderer()
    legend, plot = ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)
    assert not legend.overlaps(plot), (legend, plot)
    assert [t.get_text() for t in ax.get_xticklabels() if t.get_text()] and \
        all(float(t.get_text()).is_integer() for t in ax.get_xticklabels() if t.get_text())


def test_trick_flags_reach_the_scripts_and_a_task_they_do_not_apply_to_is_skipped(capsys):
    args, names = run_all.parse_args(["--model", "tiny", "--rdrop", "1", "--eval-every", "50"])
    assert "cmrc2018" not in names and "cluener" not in names and "afqmc" in names
    assert set(args.skipped) == {"cmrc2018", "cluener"}
    assert args.skipped["cluener"].startswith("--rdrop does not apply to cluener")
    assert run_all.task_flags(args, [])[:6] == ["--model", "tiny", "--rdrop", "1.0", "--eval-every", "50"]
    _, names = run_all.parse_args(["--model", "tiny", "--", "--rdrop", "1"])   # a task flag after --
    assert "cmrc2018" not in names
    for argv, message in ((["cmrc2018", "--model", "tiny", "--rdrop", "1"], "--rdrop does not apply to cmrc2018"),
                          (["--model", "tiny", "--ema", "2"], "--ema must be between 0 and 1")):
        with pytest.raises(SystemExit):   # a task named with a trick it refuses, a trick out of range
            run_all.parse_args(argv)
        assert message in capsys.readouterr().err


def test_summary_shows_the_tricks_a_run_used_and_the_skipped_tasks(tmp_path):
    dirs = OutputDirs(tmp_path).make()
    for name, flags in (("csl", {"ema": 0.999, "rdrop": None, "eval_every": 50}), ("afqmc", {"ema": None})):
        (dirs.logs / f"{name}.run.json").write_text(json.dumps({"status": "done", "wall_s": 1.0}))
        (dirs.logs / f"{name}.state.json").write_text(json.dumps({
            "metric": "accuracy", "best": 0.5, "best_epoch": 1, "epochs_done": 1, "epochs": 1, "flags": flags,
            "steps_per_epoch": 100, "evaluations": [[50, 0.4], [100, 0.5]]}))
    args = SimpleNamespace(model="tiny", output_dir=str(tmp_path), extra=[], skipped={"cluener": "--rdrop ..."})
    summary = run_all.summarise(["csl", "afqmc"], args, dirs)
    assert summary["tasks"]["csl"]["tricks"] == "--ema 0.999 --eval-every 50"
    assert summary["tasks"]["csl"]["dev_curve"] == [[0.5, 40.0], [1.0, 50.0]]
    table = (dirs.results / "summary.md").read_text()
    assert "| afqmc | accuracy | 50.00 | 1 | 1/1 | 1.0 | done | - |" in table
    assert "| csl | accuracy | 50.00 | 1 | 1/1 | 1.0 | done | --ema 0.999 --eval-every 50 |" in table
    assert "**Skipped** (a trick asked for does not apply): cluener (--rdrop ...)." in table
