"""Output folders stay sound (issue 19): one run per task and folder, readable files, interrupts that stop
at a safe point and resume exactly, run_clue leaving no orphan."""

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from clue import demo, paths
from clue.data import DataError

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tasks"))
import afqmc  # noqa: E402
from killed_runs import h5_arrays  # noqa: E402
from test_training import FLAGS  # noqa: E402  (the same small run)

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def test_a_second_run_into_one_output_folder_is_refused_until_the_first_dies(tmp_path):
    data = tmp_path / "data"
    demo.make_afqmc(data / "afqmc", seed=1, sizes={"train": 32, "dev": 16, "test": 8})
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time; from clue import paths; "
                               "paths.lock_task(paths.OutputDirs(sys.argv[1]).make(), 'afqmc'); "
                               "print('held', flush=True); time.sleep(600)", str(out)],
                              stdout=subprocess.PIPE, text=True, env=ENV)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(paths.OutputBusyError, match=rf"pid {holder.pid}\b"):
        afqmc.main(["--data-dir", str(data), "--output-dir", str(out), *FLAGS])
    assert not (out / "weights" / "afqmc.weights.h5").exists()
    holder.kill()
    holder.wait()
    # the kernel dropped the dead holder's lock: the next run goes ahead
    afqmc.main(["--data-dir", str(data), "--output-dir", str(out), *FLAGS, "--epochs", "1"])
    assert (out / "results" / "afqmc_predict.json").is_file()


def test_written_files_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        written = paths.write_atomic(tmp_path / "r.json", "{}\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(written.stat().st_mode) == paths.FILE_MODE
    assert paths.FILE_MODE & 0o044, "others and the group can read the leaderboard files"


def wait_for_epochs(state_path, proc, epochs, timeout=300):
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        try:
            if json.loads(state_path.read_text())["epochs_done"] >= epochs:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)


def test_sigint_mid_run_stops_cleanly_and_resume_matches_an_uninterrupted_run(tmp_path):
    data = tmp_path / "data"
    demo.make_afqmc(data / "afqmc", seed=3, sizes={"train": 480, "dev": 64, "test": 24})
    common = ["--data-dir", str(data), *FLAGS]
    cut = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, str(REPO / "tasks" / "afqmc.py"), *common, "--output-dir", str(cut)],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_epochs(cut / "logs" / "afqmc.state.json", proc, 1)
    proc.send_signal(signal.SIGINT)
    sent = time.time()
    _, err = proc.communicate(timeout=60)
    assert time.time() - sent < 20, "the run took too long to stop"
    assert proc.returncode == 130, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last in ("interrupted at epoch 2; rerun with --resume to continue",
                    "interrupted; rerun with --resume to continue"), err[-3000:]
    assert "Traceback" not in err
    assert "oneDNN" not in err and "InitializeLog" not in err, "TensorFlow's start-up log (only with --verbose 2)"
    assert not (cut / "results" / "afqmc_predict.json").exists()

    afqmc.main([*common, "--output-dir", str(cut), "--resume"])
    whole = tmp_path / "whole"
    afqmc.main([*common, "--output-dir", str(whole)])
    for name in ("afqmc_backup/latest.weights.h5", "afqmc.weights.h5"):
        a, b = h5_arrays(whole / "weights" / name), h5_arrays(cut / "weights" / name)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), name
    assert (whole / "results" / "afqmc_predict.json").read_bytes() == \
        (cut / "results" / "afqmc_predict.json").read_bytes()


def test_sigterm_to_run_clue_stops_its_task_and_leaves_no_process(tmp_path):
    data = tmp_path / "data"
    demo.make_afqmc(data / "afqmc", seed=4, sizes={"train": 480, "dev": 32, "test": 8})
    out = tmp_path / "out"
    runner = subprocess.Popen([sys.executable, str(REPO / "scripts" / "run_clue.py"), "afqmc", "--data-dir",
                               str(data), "--output-dir", str(out), "--model", "tiny", "--epochs", "20",
                               "--maxlen", "32", "--quiet"], env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    lock = out / "logs" / "afqmc.lock"
    wait_for_epochs(out / "logs" / "afqmc.state.json", runner, 1)
    task_pid = int(lock.read_text())
    runner.send_signal(signal.SIGTERM)
    output, _ = runner.communicate(timeout=60)
    assert runner.returncode == 130, output
    with pytest.raises(ProcessLookupError):
        os.kill(task_pid, 0)
    log = (out / "logs" / "afqmc.out").read_text()
    assert "epoch 1: dev" in log and "rerun with --resume to continue" in log
    assert json.loads((out / "logs" / "afqmc.run.json").read_text())["status"] == "interrupted"


def test_bad_test_file_and_empty_dev_fail_before_training(tmp_path):
    data = tmp_path / "data"
    folder = demo.make_afqmc(data / "afqmc", seed=5, sizes={"train": 32, "dev": 16, "test": 8})
    argv = ["--data-dir", str(data), "--output-dir", str(tmp_path / "out"), *FLAGS]
    test = folder / "test.json"
    lines = test.read_text(encoding="utf-8").splitlines()
    test.write_text("\n".join(lines + [lines[0]]) + "\n", encoding="utf-8")   # an id twice
    with pytest.raises(DataError, match=r"test\.json: test id .* appears more than once"):
        afqmc.main(argv)
    test.write_text("\n".join(lines[:3] + ["{not json"]) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"test\.json:4"):
        afqmc.main(argv)
    assert not (tmp_path / "out" / "weights" / "afqmc.weights.h5").exists()   # nothing trained
    test.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "dev.json").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match=r"dev\.json: no afqmc dev records"):
        afqmc.main(argv)


def test_resume_falls_back_to_the_previous_backup_when_the_latest_is_empty(tmp_path):
    data = tmp_path / "data"
    demo.make_afqmc(data / "afqmc", seed=6, sizes={"train": 96, "dev": 32, "test": 8})
    flags = ["--data-dir", str(data), *FLAGS[:FLAGS.index("--optimizer")], "--optimizer", "adafactor",
             "--lr", "1e-3", "--verbose", "0", "--seed", "7"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    afqmc.main([*flags, "--output-dir", str(whole)])
    afqmc.main([*flags, "--epochs", "2", "--output-dir", str(cut)])
    (cut / "weights" / "afqmc_backup" / "training_metadata.json").write_text("")   # a full disk's leftover
    afqmc.main([*flags, "--output-dir", str(cut), "--resume"])
    a, b = (h5_arrays(d / "weights" / "afqmc_backup" / "latest.weights.h5") for d in (whole, cut))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert (whole / "results" / "afqmc_predict.json").read_bytes() == \
        (cut / "results" / "afqmc_predict.json").read_bytes()


HELP_OF_EACH = """
import runpy, sys
for path in sys.argv[1:]:
    sys.argv = [path, "--help"]
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as stop:
        assert stop.code in (0, None), (path, stop.code)
print(sorted(m for m in ("tensorflow", "keras", "jax", "torch") if m in sys.modules))
"""


def test_help_answers_without_importing_a_deep_learning_framework():
    scripts = [*sorted((REPO / "tasks").glob("*.py")), REPO / "scripts" / "run_clue.py", REPO / "scripts" / "predict.py"]
    proc = subprocess.run([sys.executable, "-c", HELP_OF_EACH, *map(str, scripts)], capture_output=True,
                          text=True, env=dict(ENV, PYTHONPATH=str(REPO)), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("usage: ") == len(scripts)
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout[-500:]


def test_a_full_disk_at_an_epoch_end_is_one_line_and_keeps_the_earlier_files(tmp_path, monkeypatch):
    """h5py segfaults on a full disk, so the room is checked before the best weights and the backup are
    written: here the disk 'fills up' after epoch 1, and epoch 2's end must leave epoch 1's files alone."""
    data = tmp_path / "data"
    demo.make_afqmc(data / "afqmc", seed=8, sizes={"train": 64, "dev": 32, "test": 8})
    out = tmp_path / "out"
    weights = out / "weights"
    real_usage, calls, kept = paths.shutil.disk_usage, [], {}

    def disk_usage(folder):
        usage = real_usage(folder)
        calls.append(folder)
        if len(calls) == 1:
            return usage
        for f in weights.rglob("*"):   # what epoch 1 left, as it is when the disk is full
            kept[f] = f.read_bytes() if f.is_file() else None
        return usage._replace(free=1 << 20)

    monkeypatch.setattr(paths.shutil, "disk_usage", disk_usage)
    with pytest.raises(paths.WriteError, match=r"afqmc_backup/latest\.weights\.h5: no room to write it "
                                               r"\(1\.0 MiB free on its disk, .* MiB needed\); the earlier files"):
        afqmc.main(["--data-dir", str(data), "--output-dir", str(out), *FLAGS, "--epochs", "2"])
    assert len(calls) == 2 and kept, "checked at both epoch ends"
    assert {f: (f.read_bytes() if f.is_file() else None) for f in weights.rglob("*")} == kept
    assert any(f.name == "latest.weights.h5" for f in kept) and (weights / "afqmc.weights.h5") in kept
    assert json.loads((out / "logs" / "afqmc.state.json").read_text())["epochs_done"] == 1


def test_a_failed_write_names_the_file_keeps_the_old_one_and_leaves_no_temporary(tmp_path, monkeypatch):
    from clue import cli

    target = paths.write_atomic(tmp_path / "afqmc_predict.json", '{"id": 0, "label": "1"}\n')

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(paths.os, "fsync", full)
    with pytest.raises(paths.WriteError) as raised:
        paths.write_atomic(target, '{"id": 0, "label": "0"}\n')
    assert str(raised.value) == f"{target}: could not be written (No space left on device); the earlier file is kept"
    assert target.read_text() == '{"id": 0, "label": "1"}\n' and [p.name for p in tmp_path.iterdir()] == [target.name]

    def main():
        paths.write_atomic(tmp_path / "new.json", "{}\n")

    with pytest.raises(SystemExit) as stop:
        cli.run(main)
    assert stop.value.code == f"error: {tmp_path / 'new.json'}: could not be written (No space left on device); " \
                              f"nothing was written"


def test_sigint_during_prediction_then_resume_writes_the_same_files(tmp_path):
    data = tmp_path / "data"
    demo.make_afqmc(data / "afqmc", seed=9, sizes={"train": 64, "dev": 32, "test": 3000})   # a long prediction
    common = ["--data-dir", str(data), *FLAGS, "--epochs", "1", "--batch-size", "8"]
    cut = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-u", str(REPO / "tasks" / "afqmc.py"), *common, "--output-dir",
                             str(cut)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:   # training is over: the best weights are loaded, dev and test predicted next
        if line.startswith("afqmc: best dev"):
            break
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == "interrupted; rerun with --resume to continue", err[-3000:]
    assert "afqmc_predict.json" not in rest and not (cut / "results" / "afqmc_predict.json").exists()

    afqmc.main([*common, "--output-dir", str(cut), "--resume"])
    whole = tmp_path / "whole"
    afqmc.main([*common, "--output-dir", str(whole)])
    for name in ("dev/afqmc_dev.json", "afqmc_predict.json"):
        assert (whole / "results" / name).read_bytes() == (cut / "results" / name).read_bytes(), name
