"""Run any subset of the CLUE tasks with one model preset and shared flags, then summarise:

    clue-run --model roberta-wwm-ext --model-dir ~/models/rbt --data-dir ~/clue --output-dir runs/rbt
    clue-run afqmc tnews --model tiny --epochs 1 --limit 300 -- --pooling avg   # after --: any task flag

Each task script (``clue.registry``) runs in a subprocess of its own, its output shown and kept in
``logs/<task>.out``. ``logs/<task>.run.json`` records the flags and how the run ended: a task that finished
with the same flags is skipped, one that was interrupted or failed is continued with ``--resume`` (the
scripts keep per-epoch backups), and one run with other flags starts afresh. At the end, from the scripts'
own logs (``logs/<task>.csv`` per epoch, ``logs/<task>.state.json`` for the best epoch):
``results/summary.json``, ``results/summary.md`` (dev score per task and the CLUE 1.1 average) and
``results/dev_curves.png`` (dev metric per epoch per task).
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from clue import registry
from clue.paths import OutputDirs, atomic_path, write_atomic

REPO = Path(__file__).resolve().parent.parent
SHARED = ("model", "model_dir", "data_dir", "epochs", "batch_size", "maxlen", "lr", "limit", "seed")


def clue11_tasks():
    """The tasks whose leaderboard file is part of a CLUE 1.1 submission (their average is the CLUE score)."""
    return [t.name for t in registry.TASKS.values() if t.output_names(registry.CLUE11)]


def task_flags(args, extra):
    """The flags every task script gets (the ones given here, in a fixed order, then the extras)."""
    flags = []
    for name in SHARED:
        value = getattr(args, name)
        if value is not None:
            flags += [f"--{name.replace('_', '-')}", str(value)]
    return flags + ["--output-dir", str(args.output_dir)] + list(extra)


def read_json(path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def decide(task, flags, dirs, force=False):
    """"skip", "resume" or "fresh", with the reason: from the last run record and the script's own state."""
    record = read_json(dirs.logs / f"{task.name}.run.json")
    if force or record is None:
        return "fresh", "forced" if force else "no earlier run"
    if record.get("flags") != flags:
        return "fresh", "the earlier run had other flags"
    if record.get("status") == "done":
        lost = [n for n in record.get("outputs", []) if not (dirs.results / n).is_file()]
        if lost:   # the backup holds the last epoch: a resumed run trains no further and predicts again
            return "resume", f"finished, but {', '.join(lost)} is gone"
        return "skip", f"finished {record.get('finished', '')}".strip()
    has_backup = (dirs.weights / f"{task.name}_backup").is_dir() or (dirs.logs / f"{task.name}.state.json").is_file()
    if has_backup:
        return "resume", f"the earlier run ended {record.get('status')}"
    return "fresh", f"the earlier run ended {record.get('status')} before its first epoch"


def stop_when_parent_dies():
    """In the task's process: SIGTERM it when run_clue dies, even by SIGKILL (Linux), so no orphan keeps
    writing the output folder."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG


def run_task(task, flags, dirs, resume, echo=True):
    """Run one task script, its output shown and written to logs/<task>.out; returns the exit code."""
    script = REPO / task.script
    command = [sys.executable, "-u", str(script), *flags] + (["--resume"] if resume else [])
    record_path = dirs.logs / f"{task.name}.run.json"
    record = {"task": task.name, "flags": flags, "command": command, "status": "running",
              "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_atomic(record_path, json.dumps(record, indent=1) + "\n")
    start = time.time()
    with open(dirs.logs / f"{task.name}.out", "a", encoding="utf-8") as log:
        log.write(f"\n$ {' '.join(command)}\n")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                   preexec_fn=stop_when_parent_dies)
        received = []

        def forward(signum, frame):   # the task stops at a safe point; we wait for it (no orphan)
            received.append(signum)
            process.send_signal(signum)

        before = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for chunk in iter(lambda: process.stdout.read1(1 << 14), b""):
                text = chunk.decode("utf-8", errors="replace")
                log.write(text)
                log.flush()
                if echo:
                    sys.stdout.write(text)
                    sys.stdout.flush()
            code = process.wait()
        finally:
            for s, handler in before.items():
                signal.signal(s, handler)
        if received:
            record.update(status="interrupted", wall_s=round(time.time() - start, 1))
            write_atomic(record_path, json.dumps(record, indent=1) + "\n")
            raise KeyboardInterrupt
    record.update(status="done" if code == 0 else "failed", returncode=code,
                  wall_s=round(time.time() - start, 1), finished=time.strftime("%Y-%m-%d %H:%M:%S"),
                  outputs=[n for n in task.output_names() if (dirs.results / n).is_file()])
    write_atomic(record_path, json.dumps(record, indent=1) + "\n")
    return code


def dev_curve(task, dirs):
    """[(epoch from 1, dev score as a fraction)] from logs/<task>.csv (Keras's CSVLogger: an ``epoch``
    column from 0 and the dev metric as ``val_<metric>``); a resumed epoch's last row wins."""
    path = dirs.logs / f"{task.name}.csv"
    scores = {}
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                column = next((c for c in (f"val_{task.metric}", f"dev_{task.metric}") if row.get(c)), None)
                if column and row.get("epoch"):
                    scores[int(row["epoch"]) + 1] = float(row[column])
    return sorted(scores.items())


def task_summary(task, dirs):
    """What the task's own logs and files say about its run."""
    record = read_json(dirs.logs / f"{task.name}.run.json") or {}
    state = read_json(dirs.logs / f"{task.name}.state.json") or {}
    curve = dev_curve(task, dirs)
    best = state.get("best")
    return {
        "status": record.get("status", "not run"),
        "metric": task.metric,
        "dev": None if best is None else round(100 * best, 2),
        "best_epoch": state.get("best_epoch"),
        "epochs_done": state.get("epochs_done"),
        "epochs": state.get("epochs"),
        "dev_per_epoch": [round(100 * s, 2) for _, s in curve],
        "wall_s": record.get("wall_s"),
        "outputs": [n for n in task.output_names() if (dirs.results / n).is_file()],
        "log": str(dirs.logs / f"{task.name}.out"),
        "flags": record.get("flags"),
    }


def clue_average(tasks):
    """Mean dev score over the CLUE 1.1 tasks with one, and which of them are counted."""
    counted = {name: t["dev"] for name, t in tasks.items() if name in clue11_tasks() and t["dev"] is not None}
    value = round(sum(counted.values()) / len(counted), 2) if counted else None
    return {"value": value, "tasks": sorted(counted), "of": len(clue11_tasks())}


def markdown(summary):
    lines = ["| task | metric | dev | best epoch | epochs | time (s) | status |", "|---|---|---|---|---|---|---|"]
    for name, t in summary["tasks"].items():
        dev = "-" if t["dev"] is None else f"{t['dev']:.2f}"
        epochs = "-" if t["epochs_done"] is None else f"{t['epochs_done']}/{t['epochs']}"
        lines.append(f"| {name} | {t['metric']} | {dev} | {t['best_epoch'] or '-'} | {epochs} | "
                     f"{t['wall_s'] if t['wall_s'] is not None else '-'} | {t['status']} |")
    avg = summary["clue_average"]
    value = "-" if avg["value"] is None else f"{avg['value']:.2f}"
    lines.append(f"| **CLUE 1.1 average** ({len(avg['tasks'])} of {avg['of']} tasks) | | **{value}** | | | | |")
    return "\n".join(lines) + "\n"


def plot(summary, path):
    """Dev metric per epoch, one line per task, as a PNG (matplotlib's Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    for name, t in summary["tasks"].items():
        if t["dev_per_epoch"]:
            epochs = range(1, len(t["dev_per_epoch"]) + 1)
            ax.plot(epochs, t["dev_per_epoch"], marker="o", label=f"{name} ({t['metric']})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("dev metric (%)")
    ax.set_title(f"CLUE dev scores per epoch: {summary['model']}")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def summarise(names, args, dirs):
    """Write results/summary.json, summary.md and dev_curves.png for ``names`` and every task run earlier
    into the same output folder; returns the summary dict."""
    names = [n for n in registry.TASKS if n in names or (dirs.logs / f"{n}.run.json").is_file()]
    tasks = {name: task_summary(registry.get(name), dirs) for name in names}
    summary = {"model": args.model, "flags": task_flags(args, args.extra), "tasks": tasks,
               "clue_average": clue_average(tasks)}
    write_atomic(dirs.results / "summary.json", json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    write_atomic(dirs.results / "summary.md", markdown(summary))
    plot(summary, dirs.results / "dev_curves.png")
    return summary


def build_parser():
    import argparse

    p = argparse.ArgumentParser(
        prog="clue-run", description="Run CLUE task scripts with one preset and shared flags; skip finished "
                                     "tasks, resume interrupted ones; write results/summary.{json,md} and "
                                     "results/dev_curves.png. Flags after -- go to every task script.")
    p.add_argument("tasks", nargs="*", metavar="TASK", help=f"default: all of {', '.join(registry.TASKS)}")
    p.add_argument("--model", required=True, help="preset name (tiny, bert-base, ...) or preset JSON path")
    p.add_argument("--model-dir")
    p.add_argument("--data-dir")
    p.add_argument("--output-dir", default=".", help="results/, weights/, logs/ go here")
    p.add_argument("--epochs", type=int, help="default: each task's own")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--maxlen", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--limit", type=int, help="at most N examples per split (smoke runs)")
    p.add_argument("--seed", type=int)
    p.add_argument("--force", action="store_true", help="rerun finished tasks from scratch")
    p.add_argument("--quiet", action="store_true", help="keep the task scripts' output in logs/ only")
    return p


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    args = build_parser().parse_args(argv)
    args.extra = extra
    names = [registry.get(name).name for name in args.tasks] if args.tasks else list(registry.TASKS)
    dirs = OutputDirs(args.output_dir).make()
    flags = task_flags(args, extra)
    failed = []
    try:
        for name in names:
            task = registry.get(name)
            action, why = decide(task, flags, dirs, args.force)
            print(f"== {name}: {action} ({why})", flush=True)
            if action == "skip":
                continue
            if run_task(task, flags, dirs, resume=action == "resume", echo=not args.quiet) != 0:
                failed.append(name)
                print(f"== {name}: FAILED, see {dirs.logs / (name + '.out')}", flush=True)
    except KeyboardInterrupt:
        print(f"\n== interrupted during {name}: rerun the same command to resume it", flush=True)
        summarise(names, args, dirs)
        return 130
    summary = summarise(names, args, dirs)
    print(markdown(summary))
    print(f"wrote {dirs.results / 'summary.json'}, summary.md, dev_curves.png")
    if failed:
        print(f"failed: {', '.join(failed)} (rerun the same command to resume them; if resuming fails too, "
              f"--force starts them afresh)")
    return 1 if failed else 0
