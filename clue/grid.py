"""Hyper-parameter grids for clue-run: every combination of some task-script flags, per task.

    --grid 'lr=1e-5,2e-5 batch_size=16,32'    # any task flag that takes a value (dashes or underscores)
    --grid paddlenlp                            # PaddleNLP's CLUE grid, per task (clue.registry)

A combination runs in ``grid/<combination>/`` of the output folder (``seed<S>/`` inside with --seeds), as
resumable as any run. ``grid/ledger.json`` and ``ledger.md`` list each task's combinations with their dev
scores and the winner: the highest mean dev score in the ledger (the first combination on ties). The
ledger is made again from the runs' own logs after every run, so a killed grid continues where it stopped
when the same command is run again, and ends with the ledger an uninterrupted one writes.
"""

import itertools
import json

from clue import registry
from clue.paths import write_atomic

PADDLENLP = "paddlenlp"
# PaddleNLP fine-tunes with AdamW (linear warmup and decay), its batch size being the examples per step.
PADDLENLP_FIXED = (("optimizer", ("adamw",)), ("grad_accum", ("1",)))
# Flags a grid cannot vary: where a run goes and how it runs are clue-run's own business.
NOT_IN_GRID = {"output_dir": "each combination has its own folder", "mode": "clue-run trains",
               "resume": "clue-run resumes by itself", "seed": "use --seeds",
               "model": "one preset per clue-run (the published numbers are per preset)",
               "model_dir": "one preset per clue-run", "data_dir": "one data folder per clue-run"}


class GridError(ValueError):
    """A --grid that cannot be run; the message says which part and why."""


def parse(spec, parser):
    """[(flag dest, (values as given, ...)), ...] of a ``--grid`` spec, each flag and value checked with a
    task script's argument ``parser``."""
    axes, actions = [], {a.dest: a for a in parser._actions}
    for part in spec.split():
        key, _, values = part.partition("=")
        dest = key.lstrip("-").replace("-", "_")
        values = tuple(v for v in values.split(",") if v)
        if not values:
            raise GridError(f"--grid: {part!r} gives no values (write flag=value1,value2)")
        if dest in NOT_IN_GRID:
            raise GridError(f"--grid: {key} cannot be in a grid ({NOT_IN_GRID[dest]})")
        action = actions.get(dest)
        if action is None or not action.option_strings or action.nargs == 0:
            known = sorted(a.dest for a in parser._actions if a.option_strings and a.nargs != 0
                           and a.dest not in NOT_IN_GRID and a.dest != "help")
            raise GridError(f"--grid: {key!r} is not a task flag that takes a value (known: {', '.join(known)})")
        if dest in dict(axes):
            raise GridError(f"--grid: {key} is given twice")
        if len(set(values)) < len(values):
            raise GridError(f"--grid: {key} repeats a value ({','.join(values)})")
        for value in values:
            check(action, value)
        axes.append((dest, values))
    if not axes:
        raise GridError("--grid: no flag given (write 'lr=1e-5,2e-5 batch_size=16,32', or paddlenlp)")
    return axes


def check(action, value):
    """Raise GridError unless ``value`` is one the flag of argparse ``action`` takes."""
    flag = action.option_strings[-1]
    try:
        converted = action.type(value) if action.type else value
    except (TypeError, ValueError):
        raise GridError(f"--grid: {flag} {value!r} is not a valid value") from None
    if action.choices is not None and converted not in action.choices:
        raise GridError(f"--grid: {flag} {value!r} is not one of {', '.join(map(str, action.choices))}")


def axes_for(spec, task, parser):
    """The grid's axes for ``task``: the spec's own, or PaddleNLP's for that task (none for a task PaddleNLP
    did not run: it runs once, as without a grid)."""
    if spec == PADDLENLP:
        return list(PADDLENLP_FIXED) + list(task.paddlenlp_grid) if task.paddlenlp_grid else []
    return parse(spec, parser)


def combinations(axes):
    """Every combination, as {flag dest: value}, in the order the axes and their values were given."""
    names = [name for name, _ in axes]
    return [dict(zip(names, values)) for values in itertools.product(*(values for _, values in axes))]


def flags(combination):
    """The task-script flags of a combination: ``--batch-size 16 ...``."""
    return [item for key, value in combination.items() for item in (f"--{key.replace('_', '-')}", value)]


def folder(combination):
    """The folder name of a combination under ``grid/``: ``lr=1e-5,batch_size=16`` (``default`` for none)."""
    return ",".join(f"{key}={value}" for key, value in combination.items()) or "default"


def ledger_rows(rows):
    """Each task's rows [{"combination", "folder", "dev" (per seed), "mean", "std", "status"}] and its
    winner: the row with the highest mean (the first on ties) among the finished ones."""
    tasks = {}
    for row in rows:
        tasks.setdefault(row["task"], {"rows": [], "winner": None})["rows"].append(
            {k: v for k, v in row.items() if k != "task"})
    for entry in tasks.values():
        finished = [i for i, r in enumerate(entry["rows"]) if r["status"] == "done" and r["mean"] is not None]
        if finished:
            entry["winner"] = max(finished, key=lambda i: (entry["rows"][i]["mean"], -i))
    return tasks


def ledger_markdown(ledger):
    lines = []
    for name, entry in ledger["tasks"].items():
        metric = registry.get(name).metric
        lines += [f"## {name} ({metric})", "", "| combination | dev per seed | mean | std | status |",
                  "|---|---|---|---|---|"]
        for i, row in enumerate(entry["rows"]):
            mark = " **(winner)**" if i == entry["winner"] else ""
            devs = ", ".join("-" if d is None else f"{d:.2f}" for d in row["dev"])
            mean = "-" if row["mean"] is None else f"{row['mean']:.2f}"
            std = "-" if row["std"] is None else f"{row['std']:.2f}"
            lines.append(f"| {folder(row['combination'])}{mark} | {devs} | {mean} | {std} | {row['status']} |")
        lines.append("")
    return f"# Grid {ledger['grid']}\n\n" + "\n".join(lines)


def write_ledger(root, spec, rows):
    """grid/ledger.json and grid/ledger.md under the output folder ``root``; returns the ledger."""
    ledger = {"grid": spec, "tasks": ledger_rows(rows)}
    write_atomic(root / "grid" / "ledger.json", json.dumps(ledger, indent=1, ensure_ascii=False) + "\n")
    write_atomic(root / "grid" / "ledger.md", ledger_markdown(ledger))
    return ledger
