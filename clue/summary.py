"""The summary of a clue-run, from the task scripts' own logs: each task's dev score per run (per seed with
--seeds, with their mean and standard deviation), the seeds' ensemble, and the published dev score for
the preset in use (``clue/published.json``, every number with its source) with the difference.

Files, in the output folder's ``results/``: ``summary.json``, ``summary.md`` (one table, the CLUE 1.1
average in its last row), ``dev_scores.png`` (per task: each run's dev score as a point, their mean, the
ensemble and the published number as lines) and ``dev_curves.png`` (dev metric per epoch).

The standard deviation is the sample one (n - 1); the CLUE 1.1 average is taken per seed over the CLUE 1.1
tasks every seed finished, then averaged like a task.
"""

import csv
import json
import math
import statistics
from pathlib import Path

from clue import cli, registry
from clue.paths import atomic_path, write_atomic

PUBLISHED = Path(__file__).with_name("published.json")


def clue11_tasks():
    """The tasks whose leaderboard file is part of a CLUE 1.1 submission (their average is the CLUE score)."""
    return [t.name for t in registry.TASKS.values() if t.output_names(registry.CLUE11)]


def read_json(path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


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


def run_summary(task, dirs):
    """What one run's logs and files say: how it ended, its best dev score (percent), epochs, time, and the
    files its --limit cut short (``partial``: its dev score and leaderboard files cover only part of them)."""
    record = read_json(dirs.logs / f"{task.name}.run.json") or {}
    state = read_json(dirs.logs / f"{task.name}.state.json") or {}
    best = state.get("best")
    return {
        "partial": state.get("partial") or {},
        "status": record.get("status", "not run"),
        "metric": task.metric,
        "dev": None if best is None else round(100 * best, 2),
        "best_epoch": state.get("best_epoch"),
        "epochs_done": state.get("epochs_done"),
        "epochs": state.get("epochs"),
        "dev_per_epoch": [round(100 * s, 2) for _, s in dev_curve(task, dirs)],
        "wall_s": record.get("wall_s"),
        "outputs": [n for n in task.output_names() if (dirs.results / n).is_file()],
        "log": str(dirs.logs / f"{task.name}.out"),
        "flags": record.get("flags"),
        "tricks": tricks_of(state),
        "dev_curve": dev_points(state),
    }


def tricks_of(state):
    """The leaderboard tricks a run's state file records as set: "--ema 0.999 --eval-every 100", or ""."""
    flags = state.get("flags") or {}
    return " ".join(f"--{name.replace('_', '-')} {flags[name]:g}" for name in cli.TRICK_FLAGS
                    if flags.get(name) is not None)


def dev_points(state):
    """[[epoch (a fraction mid-epoch), dev score in percent]] of every evaluation a run's state file
    records (with --eval-every, also those within epochs); [] when it records none."""
    steps = state.get("steps_per_epoch")
    return [[round(step / steps, 4), round(100 * score, 2)] for step, score in state.get("evaluations", [])] \
        if steps else []


def spread(values):
    """(mean, sample standard deviation) rounded to 2 places; the deviation is None for one value, both
    None for none."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    std = round(statistics.stdev(values), 2) if len(values) > 1 else None
    return round(statistics.fmean(values), 2), std


def published(model):
    """{task: {"value", "source", ...}} of published dev scores for preset ``model`` (a name or a preset
    file, looked up by its name); {} where none are known (``tiny``, a custom preset)."""
    from clue.presets import load_preset

    try:
        name = load_preset(model)["name"]
    except (OSError, ValueError):
        return {}
    table = json.loads(PUBLISHED.read_text(encoding="utf-8"))
    return {task: dict(entry, source_url=table["sources"][entry["source"]]["url"])
            for task, entry in table["dev"].get(name, {}).items()}


def difference(ours, theirs):
    return None if ours is None or theirs is None else round(ours - theirs, 2)


def task_entry(task, runs, ensemble=None, reference=None, combination=None):
    """A task's summary: ``runs`` [(seed or None, run summary)], the ensemble's dev score (percent), the
    published entry. A single run's own fields stay at the top level, as before seeds existed."""
    seeds = [seed for seed, _ in runs]
    summaries = [s for _, s in runs]
    done = [s for s in summaries if s["status"] == "done"]
    mean, std = spread([s["dev"] for s in done]) if len(done) == len(summaries) else (None, None)
    entry = dict(summaries[0]) if len(runs) == 1 else {
        "status": "done" if len(done) == len(summaries) else next(s["status"] for s in summaries
                                                                  if s["status"] != "done"),
        "metric": task.metric, "dev": mean}
    if len(runs) == 1:
        mean = entry["dev"]
    entry.update(seeds=seeds, runs=[dict(s, seed=seed) for seed, s in runs], dev_std=std)
    entry["ensemble"] = ensemble
    entry["combination"] = combination
    entry["published"] = reference
    entry["difference"] = difference(mean, reference and reference["value"])
    return entry


def clue_average(tasks):
    """The CLUE 1.1 average: per seed over the CLUE 1.1 tasks every seed finished, then their mean and
    spread; the ensemble's and the published one over the same tasks (when every one of them has it)."""
    counted = sorted(name for name, t in tasks.items() if name in clue11_tasks()
                     and t["runs"] and all(r["dev"] is not None and r["status"] == "done" for r in t["runs"]))
    seeds = len(tasks[counted[0]]["runs"]) if counted else 0
    per_seed = [round(statistics.fmean(tasks[n]["runs"][i]["dev"] for n in counted), 2) for i in range(seeds)]
    value, std = spread(per_seed)

    def over_counted(get):
        values = [get(tasks[n]) for n in counted]
        return round(statistics.fmean(values), 2) if values and None not in values else None

    ensemble = over_counted(lambda t: (t["ensemble"] or {}).get("dev"))
    reference = over_counted(lambda t: (t["published"] or {}).get("value"))
    return {"value": value, "std": std, "per_seed": per_seed, "ensemble": ensemble, "published": reference,
            "difference": difference(value, reference), "tasks": counted, "of": len(clue11_tasks())}


def _number(value, bold=False):
    if value is None:
        return "-"
    return f"**{value:.2f}**" if bold else f"{value:.2f}"


def _signed(value):
    return "-" if value is None else f"{value:+.2f}"


def _row(cells):
    return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"


def markdown(summary):
    """The summary table. One run per task: dev, best epoch, epochs, time and status; with seeds, each
    seed's dev, mean ± std and the ensemble. The published columns only where the preset has numbers."""
    tasks, avg = summary["tasks"], summary["clue_average"]
    seeds = summary.get("seeds")
    show_published = any(t["published"] for t in tasks.values())
    show_combination = any(t["combination"] for t in tasks.values())
    show_tricks = any(r.get("tricks") for t in tasks.values() for r in t["runs"])
    extra = (["combination"] if show_combination else []) + (["tricks"] if show_tricks else []) + (["published dev", "difference"] if show_published else [])
    if not seeds:
        head = ["task", "metric", "dev", "best epoch", "epochs", "time (s)", "status", *extra]
    else:
        head = ["task", "metric", *(f"seed {s}" for s in seeds), "mean ± std",
                *(["ensemble"] if summary.get("ensemble") else []), "runs done", *extra]
    lines = [_row(head), "|" + "---|" * len(head)]
    for name, t in tasks.items():
        cells = [name, t["metric"]]
        if not seeds:
            epochs = "-" if t["epochs_done"] is None else f"{t['epochs_done']}/{t['epochs']}"
            cells += [_number(t["dev"]), str(t["best_epoch"] or "-"), epochs,
                      "-" if t["wall_s"] is None else str(t["wall_s"]), t["status"]]
        else:
            cells += [_number(r["dev"]) for r in t["runs"]]
            cells.append("-" if t["dev"] is None else f"{t['dev']:.2f}" + (f" ± {t['dev_std']:.2f}"
                                                                             if t["dev_std"] is not None else ""))
            if summary.get("ensemble"):
                cells.append(_number((t["ensemble"] or {}).get("dev")))
            cells.append(f"{sum(r['status'] == 'done' for r in t['runs'])}/{len(t['runs'])}")
        if show_combination:
            cells.append(" ".join(f"{k}={v}" for k, v in (t["combination"] or {}).items()) or "-")
        if show_tricks:
            cells.append(" / ".join(dict.fromkeys(r.get("tricks") or "-" for r in t["runs"])))
        if show_published:
            reference = t["published"]
            cells += [_number(reference and reference["value"]) + ("¹" if reference and reference.get("note") else ""),
                      _signed(t["difference"])]
        lines.append(_row(cells))
    label = f"**CLUE 1.1 average** ({len(avg['tasks'])} of {avg['of']} tasks)"
    cells = [label, ""]
    if not seeds:
        cells += [_number(avg["value"], bold=True), "", "", "", ""]
    else:
        cells += [_number(v) for v in avg["per_seed"]] + [""] * (len(seeds) - len(avg["per_seed"]))
        value = _number(avg["value"], bold=True) + (f" ± {avg['std']:.2f}" if avg["std"] is not None else "")
        cells.append(value)
        if summary.get("ensemble"):
            cells.append(_number(avg["ensemble"]))
        cells.append("")
    if show_combination:
        cells.append("")
    if show_tricks:
        cells.append("")
    if show_published:
        cells += [_number(avg["published"]), _signed(avg["difference"])]
    lines.append(_row(cells))
    partial = {name: next(r["partial"] for r in t["runs"] if r.get("partial")) for name, t in tasks.items()
               if any(r.get("partial") for r in t["runs"])}
    if partial:
        cut = "; ".join(f"{name} ({', '.join(f'{file} {kept:,} of {total:,}' for file, (kept, total) in files.items())})"
                        for name, files in partial.items())
        lines += ["", f"**Partial runs** (--limit cut these files): {cut}. Their dev scores and leaderboard "
                      f"files cover only that part: not for submission."]
    if summary.get("skipped"):
        lines += ["", "**Skipped** (a trick asked for does not apply): "
                  + "; ".join(f"{name} ({why})" for name, why in summary["skipped"].items()) + "."]
    if show_published:
        lines.append("")
        notes = {t["published"]["source_url"] for t in tasks.values() if t["published"]}
        lines.append(f"Published dev scores for {summary['model']} (clue/published.json): "
                     + ", ".join(sorted(notes)) + "; difference = ours"
                     + (" (mean over seeds)" if seeds else "") + " minus published.")
        lines += [f"¹ {name}: {t['published']['note']}" for name, t in tasks.items()
                  if t["published"] and t["published"].get("note")]
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")   # no display needed
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp)
    _pyplot().close(fig)
    return path


def plot_curves(summary, path):
    """Dev metric per epoch (and within epochs, with --eval-every), one line per task and run (a task's
    seeds in its colour), as a PNG."""
    return _save(curves_figure(summary), path)


def curve_points(run):
    """(epochs, dev scores) to plot for a run: every evaluation when some fell within an epoch
    (--eval-every), else one point per epoch (the CSV log)."""
    points = run.get("dev_curve") or []
    if any(epoch != int(epoch) for epoch, _ in points):
        return [e for e, _ in points], [v for _, v in points]
    return list(range(1, len(run["dev_per_epoch"]) + 1)), run["dev_per_epoch"]


def curves_figure(summary):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    for i, (name, t) in enumerate(summary["tasks"].items()):
        curves = [curve_points(r) for r in t["runs"] if r["dev_per_epoch"] or r.get("dev_curve")]
        for k, (epochs, scores) in enumerate(curves):
            label = f"{name} ({t['metric']})" + (f", {len(curves)} seeds" if len(curves) > 1 else "")
            ax.plot(epochs, scores, marker="o" if len(epochs) <= 30 else None, color=f"C{i % 10}", alpha=0.85,
                    label=None if k else label)
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("dev metric (%)")
    ax.set_title(f"CLUE dev scores per epoch: {summary['model']}")
    ax.grid(alpha=0.3)
    if ax.lines:   # beside the plot, where it covers no curve
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    return fig


def plot_scores(summary, path):
    """One panel per task (and the CLUE 1.1 average), each on its own scale: every run's dev score as a
    point (its seed beside it), their mean as a bar over a band of ± one standard deviation, the ensemble
    as a star and the published dev score as a dashed line, each with its number."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    plt = _pyplot()
    panels = [(name, t["metric"], [(r["seed"], r["dev"]) for r in t["runs"] if r["dev"] is not None], t["dev"],
               t["dev_std"], (t["ensemble"] or {}).get("dev"), (t["published"] or {}).get("value"))
              for name, t in summary["tasks"].items()]
    avg, seeds = summary["clue_average"], summary.get("seeds")
    if len(avg["tasks"]) > 1:
        points = list(zip(seeds or [None] * len(avg["per_seed"]), avg["per_seed"]))
        panels.append(("CLUE 1.1 average", f"{len(avg['tasks'])} tasks", points, avg["value"], avg["std"],
                       avg["ensemble"], avg["published"]))
    columns = min(4, len(panels)) or 1
    rows = math.ceil(len(panels) / columns) or 1
    fig, axes = plt.subplots(rows, columns, figsize=(3.3 * columns, 3.0 * rows + 0.9), dpi=100, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for index, (ax, (name, metric, points, mean, std, ensemble, reference)) in enumerate(zip(axes.flat, panels)):
        if index == len(summary["tasks"]):
            ax.set_facecolor("0.96")          # the average, set apart from the tasks
        ax.set_title(f"{name} ({metric})", fontsize=10)
        ax.set_xlim(-1, 1)
        ax.set_xticks([])
        ax.grid(axis="y", alpha=0.3)
        ax.tick_params(axis="y", labelsize=8)
        values = [v for _, v in points] + [v for v in (mean, ensemble, reference) if v is not None]
        if std is not None:
            values += [mean - std, mean + std]
        if not values:
            ax.text(0.5, 0.5, "no dev score yet", ha="center", va="center", transform=ax.transAxes, color="0.4")
            continue
        low, high = min(values), max(values)
        pad = max((high - low) * 0.22, 0.5)
        ax.set_ylim(low - pad, high + pad)
        if mean is not None:
            if std is not None:
                ax.fill_between([-0.8, 0.05], mean - std, mean + std, color="C0", alpha=0.12, linewidth=0)
            ax.hlines(mean, -0.8, 0.05, color="C0", linewidth=2.5)
            ax.annotate(f"{mean:.2f}" + (f"\n± {std:.2f}" if std is not None else ""), (0.1, mean), va="center",
                        fontsize=9, color="C0", fontweight="bold")
        for i, (seed, value) in enumerate(points):
            x = -0.65 + 0.5 * (i / max(len(points) - 1, 1)) if len(points) > 1 else -0.4
            ax.plot(x, value, "o", color="C0", markersize=6, markeredgecolor="white", zorder=3)
            if seed is not None:
                ax.annotate(str(seed), (x, value), textcoords="offset points", xytext=(5, 3), fontsize=7, color="0.35")
        if ensemble is not None:
            ax.plot(0.72, ensemble, "*", color="C2", markersize=13, markeredgecolor="white", zorder=3)
            ax.annotate(f"{ensemble:.2f}", (0.72, ensemble), textcoords="offset points", xytext=(0, -12),
                        ha="center", fontsize=8, color="C2")
        if reference is not None:
            ax.axhline(reference, color="C3", linestyle="--", linewidth=1.4)
            ours = "" if mean is None else f" (ours {mean - reference:+.2f})"
            ax.annotate(f"published {reference:.2f}{ours}", (0.98, reference), xycoords=("axes fraction", "data"),
                        textcoords="offset points", xytext=(0, 3), ha="right", fontsize=8, color="C3")
    handles = [Line2D([], [], marker="o", color="C0", linestyle="", label="a run (seed beside it)"),
               Line2D([], [], color="C0", linewidth=2.5, label="mean"),
               Patch(color="C0", alpha=0.15, label="± 1 std")]
    if summary.get("ensemble"):
        handles.append(Line2D([], [], marker="*", color="C2", markersize=11, linestyle="", label="ensemble"))
    if any(p[6] is not None for p in panels):
        handles.append(Line2D([], [], color="C3", linestyle="--", label="published dev"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    runs = f"{len(seeds)} seeds" if seeds else "one run per task"
    fig.suptitle(f"CLUE dev scores, {summary['model']}: {runs}", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    return _save(fig, path)


def write(summary, results):
    """summary.json, summary.md, dev_scores.png and dev_curves.png in ``results``."""
    results = Path(results)
    write_atomic(results / "summary.json", json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    write_atomic(results / "summary.md", markdown(summary))
    plot_scores(summary, results / "dev_scores.png")
    plot_curves(summary, results / "dev_curves.png")
    return summary
