"""Run any subset of the CLUE tasks with one model preset and shared flags, then summarise:

    clue-run --model roberta-wwm-ext --model-dir ~/models/rbt --data-dir ~/clue --output-dir runs/rbt
    clue-run afqmc tnews --model tiny --epochs 1 --limit 300 -- --pooling avg   # after --: any task flag
    clue-run afqmc tnews --model bert-base --seeds 1,2,3 --ensemble              # seeds, averaged outputs
    clue-run afqmc --model bert-base --grid 'lr=1e-5,2e-5 batch_size=16,32'      # or --grid paddlenlp

Each task script (``clue.registry``) runs in a subprocess of its own, its output shown and kept in
``logs/<task>.out``. ``logs/<task>.run.json`` records the flags and how the run ended: a task that finished
with the same flags is skipped, one that was interrupted or failed is continued with ``--resume`` (the
scripts keep per-epoch backups), and one run with other flags starts afresh.

``--seeds S1,S2`` runs each task once per seed, in ``seed<S>/`` of the output folder; ``--ensemble`` then
writes the leaderboard files into ``results/`` from the seeds' averaged scores (``clue.ensemble``) and
scores the ensemble on dev. ``--grid`` runs every combination of some task flags per task in
``grid/<combination>/`` (``clue.grid``: ledger, winner per task); the winners' leaderboard files (their
ensemble with --ensemble) go to ``results/``. At the end ``results/summary.json``, ``summary.md``,
``dev_scores.png`` and ``dev_curves.png`` (``clue.summary``), with the preset's published dev scores.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from clue import cli, devices, ensemble, grid, predictions, registry, run_files, summary
from clue.paths import OutputDirs, atomic_path, write_atomic

REPO = Path(__file__).resolve().parent.parent
SHARED = ("model", "model_dir", "data_dir", "epochs", "batch_size", "maxlen", "lr", "limit", "seed", "devices",
          *cli.TRICK_FLAGS)
read_json = summary.read_json


@dataclass
class Unit:
    """One run of one task script: its grid combination, seed, folder and flags."""

    task: registry.Task
    combination: dict
    seed: int | None
    dirs: OutputDirs
    flags: list

    def label(self):
        where = f" [{grid.folder(self.combination)}]" if self.combination else ""
        return f"{self.task.name}{where}" + (f" seed {self.seed}" if self.seed is not None else "")


def task_flags(args, extra, output_dir=None, seed=None, combination=None):
    """The flags every task script gets (the ones given here, in a fixed order, a grid combination's, then
    the extras); ``seed`` and ``output_dir`` replace --seed and --output-dir."""
    flags = []
    for name in SHARED:
        value = seed if name == "seed" and seed is not None else getattr(args, name, None)
        if value is not None:
            flags += [f"--{name.replace('_', '-')}", str(value)]
    flags += grid.flags(combination or {})
    return flags + ["--output-dir", str(output_dir or args.output_dir)] + list(extra)


def training_flags(flags):
    """``flags`` without --devices: the same training on any number of devices, so a run goes on (resumes,
    or stays finished) when only the device count changed."""
    return [f for i, f in enumerate(flags) if f != "--devices" and (i == 0 or flags[i - 1] != "--devices")]


def decide(task, flags, dirs, force=False):
    """"skip", "resume" or "fresh", with the reason: from the last run record and the script's own state."""
    record = read_json(dirs.logs / f"{task.name}.run.json")
    if force or record is None:
        return "fresh", "forced" if force else "no earlier run"
    if training_flags(record.get("flags") or []) != training_flags(flags):
        return "fresh", "the earlier run had other flags"
    if record.get("status") == "done":
        written = set(record.get("outputs", []))
        written |= {str(predictions.scores_path(Path(n))) for n in written if not n.endswith(".npz")}
        lost = sorted(n for n in written if not (dirs.results / n).is_file())
        if lost:
            return predict_again(task, dirs, f"finished, but {', '.join(lost)} is gone")
        return "skip", f"finished {record.get('finished', '')}".strip()
    has_backup = (run_files.backup_path(dirs.weights, task.name).is_dir()
                  or (dirs.logs / f"{task.name}.state.json").is_file())
    if has_backup:
        return "resume", f"the earlier run ended {record.get('status')}"
    return "fresh", f"the earlier run ended {record.get('status')} before its first epoch"


def predict_again(task, dirs, why):
    """How to rewrite the prediction files of a finished run: "resume" trains no further and predicts again,
    from the last epoch's backup (--keep-backup) or, the backup deleted, from the best weights; with
    neither left, "fresh"."""
    if run_files.backup_path(dirs.weights, task.name).is_dir():
        return "resume", why
    if run_files.weights_path(dirs.weights, task.name).is_file():
        return "resume", f"{why}: predicting again from the best weights"
    return "fresh", f"{why}, and so are the best weights"


def stop_when_parent_dies():
    """In the task's process: SIGTERM it when run_clue dies, even by SIGKILL (Linux), so no orphan keeps
    writing the output folder."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG


def run_task(task, flags, dirs, resume, echo=True):
    """Run one task script, its output shown and written to logs/<task>.out; returns the exit code."""
    dirs.make()
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
                  outputs=[n for n in predictions.file_names(task) if (dirs.results / n).is_file()])
    write_atomic(record_path, json.dumps(record, indent=1) + "\n")
    return code


def plan(args, names):
    """{task: [(combination, [Unit per seed])]}: every run the command asks for, in the order they run."""
    root = Path(args.output_dir)
    seeds = args.seeds or [None]
    runs = {}
    for name in names:
        task = registry.get(name)
        combinations = grid.combinations(args.axes[name]) if args.grid else [{}]
        runs[name] = []
        for combination in combinations:
            base = root / "grid" / grid.folder(combination) if args.grid else root
            units = []
            for seed in seeds:
                folder = base / f"seed{seed}" if args.seeds else base
                flags = task_flags(args, args.extra, output_dir=folder, seed=seed, combination=combination)
                units.append(Unit(task, combination, seed, OutputDirs(folder), flags))
            runs[name].append((combination, units))
    return runs


def ledger(args, runs):
    """grid/ledger.{json,md} from the runs' logs: each combination's dev per seed, mean, std, status."""
    rows = []
    for name, combinations in runs.items():
        for combination, units in combinations:
            done = [summary.run_summary(u.task, u.dirs) for u in units]
            statuses = [s["status"] for s in done]
            mean, std = summary.spread([s["dev"] for s in done]) if set(statuses) == {"done"} else (None, None)
            rows.append({"task": name, "combination": combination, "folder": f"grid/{grid.folder(combination)}",
                         "dev": [s["dev"] for s in done], "mean": mean, "std": std,
                         "status": next((s for s in statuses if s != "done"), "done")})
    return grid.write_ledger(Path(args.output_dir), args.grid, rows)


def chosen(args, runs, book):
    """{task: (combination, units)}: each task's runs the summary and submission are made from (the grid's
    winner, or the only combination)."""
    out = {}
    for name, combinations in runs.items():
        winner = book["tasks"][name]["winner"] if book else 0
        out[name] = combinations[winner if winner is not None else 0]
    return out


def copy_atomic(source, target):
    with atomic_path(target, suffix=Path(target).suffix) as tmp:
        shutil.copyfile(source, tmp)


def submit(args, task, units, results):
    """The task's leaderboard files in ``results``: the seeds' ensemble (--ensemble), else, for a grid, a
    copy of the winner's files (with seeds, of its seed with the best dev score); returns the ensemble's
    {"dev", "outputs", "missing"} or None."""
    finished = [u for u in units if summary.run_summary(task, u.dirs)["status"] == "done"]
    if args.ensemble:
        if len(finished) < len(units):
            print(f"== {task.name}: no ensemble, {len(units) - len(finished)} of its seeds did not finish")
            return None
        built = ensemble.build(task, [u.dirs.root for u in units], results)
        for problem in built["missing"]:
            print(f"== {task.name} ensemble: left out {problem} (rerun with --force to save the scores)")
        return built
    if not args.grid or not finished:
        return None
    best = max(finished, key=lambda u: summary.run_summary(task, u.dirs)["dev"] or -1)
    for name in task.output_names():
        for source in (best.dirs.results / name, predictions.scores_path(best.dirs.results / name)):
            if source.is_file():
                copy_atomic(source, results / source.name)
    return None


def summarise(names, args, dirs, runs=None, book=None, ensembles=None):
    """results/summary.json, summary.md, dev_scores.png and dev_curves.png for ``names`` and every task run
    earlier into the same output folder (without seeds or a grid); returns the summary dict."""
    for name, default in (("seeds", None), ("ensemble", False), ("grid", None), ("axes", {})):
        if not hasattr(args, name):   # a namespace from before seeds and grids
            setattr(args, name, default)
    if runs is None:
        if not getattr(args, "seeds", None) and not getattr(args, "grid", None):
            names = [n for n in registry.TASKS if n in names or (dirs.logs / f"{n}.run.json").is_file()]
        runs = plan(args, names)
    reference = summary.published(args.model)
    tasks = {}
    for name, (combination, units) in chosen(args, runs, book).items():
        task = registry.get(name)
        tasks[name] = summary.task_entry(task, [(u.seed, summary.run_summary(task, u.dirs)) for u in units],
                                         ensemble=(ensembles or {}).get(name), reference=reference.get(name),
                                         combination=combination or None)
    result = {"model": args.model, "flags": task_flags(args, args.extra), "seeds": args.seeds,
              "ensemble": bool(args.ensemble), "tasks": tasks, "clue_average": summary.clue_average(tasks),
              "skipped": getattr(args, "skipped", {})}
    if book:
        result["grid"] = {"spec": args.grid, "ledger": str(Path(args.output_dir) / "grid" / "ledger.json"),
                          "winners": {n: (combination or None) for n, (combination, _) in chosen(args, runs, book).items()}}
    return summary.write(result, dirs.results)


def build_parser():
    import argparse

    p = argparse.ArgumentParser(
        prog="clue-run", description="Run CLUE task scripts with one preset and shared flags; skip finished "
                                     "tasks, resume interrupted ones; seeds, their ensemble, a grid; write "
                                     "results/summary.{json,md}, dev_scores.png and dev_curves.png. Flags "
                                     "after -- go to every task script.")
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
    cli.add_trick_flags(p)
    p.add_argument("--devices", type=devices.parse_devices, metavar="N|all",
                   help="each task data parallel over N devices (see the task scripts' --devices)")
    p.add_argument("--seeds", help="S1,S2,...: run each task once per seed, in seed<S>/; the summary gives "
                                   "each seed's dev score and their mean and standard deviation")
    p.add_argument("--ensemble", action="store_true",
                   help="with --seeds: results/ gets the leaderboard files made from the seeds' averaged "
                        "scores, and the ensemble's dev score is reported")
    p.add_argument("--grid", help="'flag=v1,v2 flag=v1,v2': every combination per task, in grid/ with a "
                                  "ledger; the winners (best dev) make results/. 'paddlenlp': PaddleNLP's grid")
    p.add_argument("--force", action="store_true", help="rerun finished tasks from scratch")
    p.add_argument("--quiet", action="store_true", help="keep the task scripts' output in logs/ only")
    return p


def parse_args(argv):
    """(args, task names); flag errors end through argparse. Tasks that a trick's flag does not apply to
    (``cli.trick_refusals``, given here or after --) are left out, each in ``args.skipped`` with the reason;
    a task named on the command line is an error instead."""
    argv = list(argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    args.extra = extra
    try:
        spanning = devices.processes(args) > 1
    except devices.DeviceError as err:
        parser.error(str(err))
    if spanning:   # each process's clue-run would write the same records
        parser.error("clue-run runs on one machine; over several, run each task script with --processes "
                     "(README: several machines)")
    cli.check_trick_values(parser, args)
    try:
        names = [registry.get(name).name for name in args.tasks] if args.tasks else list(registry.TASKS)
    except KeyError as err:
        parser.error(str(err).strip("'\""))
    args.skipped = {}   # {task: why}: the tasks a trick asked for does not apply to
    for name in list(names):
        task = registry.get(name)
        refusals = cli.trick_refusals(task, cli.build_parser(task).parse_known_args(task_flags(args, extra))[0])
        if refusals and args.tasks:
            parser.error(refusals[0])
        if refusals:
            args.skipped[name] = refusals[0]
            names.remove(name)
    if args.seeds is not None:
        try:
            args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            parser.error(f"--seeds takes whole numbers separated by commas, got {args.seeds!r}")
        if not args.seeds or len(set(args.seeds)) < len(args.seeds):
            parser.error(f"--seeds needs distinct seeds, got {','.join(map(str, args.seeds)) or 'none'}")
        if args.seed is not None:
            parser.error("--seed and --seeds: give one of them")
    if args.ensemble and len(args.seeds or []) < 2:
        parser.error("--ensemble averages the runs of --seeds: give two or more seeds")
    args.axes = {}
    if args.grid:
        given = {a.lstrip("-").split("=")[0].replace("-", "_") for a in extra if a.startswith("--")}
        given |= {name for name in SHARED if getattr(args, name, None) is not None}
        for name in names:
            task = registry.get(name)
            try:
                args.axes[name] = grid.axes_for(args.grid, task, cli.build_parser(task))
            except grid.GridError as err:
                parser.error(str(err))
            clash = sorted(given & {key for key, _ in args.axes[name]})
            if clash:
                parser.error(f"--grid varies {', '.join(clash)}, also given as a flag: give it in one place")
    return args, names


def main(argv=None):
    args, names = parse_args(sys.argv[1:] if argv is None else argv)
    dirs = OutputDirs(args.output_dir)
    dirs.results.mkdir(parents=True, exist_ok=True)   # the runs make their own folders
    for name, why in args.skipped.items():
        print(f"== {name}: skipped ({why})", flush=True)
    runs = plan(args, names)
    book, failed, ensembles = None, [], {}
    try:
        for name in names:
            for _, units in runs[name]:
                for unit in units:
                    action, why = decide(unit.task, unit.flags, unit.dirs, args.force)
                    print(f"== {unit.label()}: {action} ({why})", flush=True)
                    if action != "skip" and run_task(unit.task, unit.flags, unit.dirs, resume=action == "resume",
                                                     echo=not args.quiet) != 0:
                        log = unit.dirs.logs / f"{name}.out"
                        reason = error_line(log)
                        failed.append((unit.label(), reason))
                        print(f"== {unit.label()}: FAILED{': ' + reason if reason else ''} (log: {log})", flush=True)
                    if args.grid:
                        book = ledger(args, runs)
        if args.grid:
            book = ledger(args, runs)
        for name, (_, units) in chosen(args, runs, book).items():
            built = submit(args, registry.get(name), units, dirs.results)
            if built is not None:
                ensembles[name] = built
    except KeyboardInterrupt:
        print("\n== interrupted: rerun the same command to resume", flush=True)
        summarise(names, args, dirs, runs, ledger(args, runs) if args.grid else None, ensembles)
        return 130
    result = summarise(names, args, dirs, runs, book, ensembles)
    print(summary.markdown(result))
    if book:
        print(f"wrote {Path(args.output_dir) / 'grid' / 'ledger.md'} (winners: "
              + "; ".join(f"{n}: {grid.folder(c) if c else '-'}" for n, c in result["grid"]["winners"].items()) + ")")
    print(f"wrote {dirs.results / 'summary.json'}, summary.md, dev_scores.png, dev_curves.png")
    for label, reason in failed:
        if reason:   # bad input or a missing file: resuming would meet it again
            print(f"failed: {label}: {reason} (fix that, then rerun the same command)")
        else:
            print(f"failed: {label} (see its log; rerun the same command to resume it; if resuming fails too, "
                  f"--force starts it afresh)")
    return 1 if failed else 0


def error_line(log):
    """The ``error:`` line (how ``cli.run`` reports bad input) of the last run in a task's log, which
    ``run_task`` appends to after a "$ command" line; None when it died otherwise (a crash, a kill)."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith("error: "):
            return line.strip()
        if line.startswith("$ "):
            return None
