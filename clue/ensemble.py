"""A seeds' ensemble of one task: its prediction files made again from the runs' averaged scores.

    ensemble.build(registry.get("afqmc"), [out / "seed1", out / "seed2"], out / "results")

For the dev predictions and each leaderboard file that every run wrote, the runs' saved scores
(``clue.predictions``: class and choice probabilities, chid's before the assignment, cmrc2018's best spans,
cluener's pair tables) are averaged and the file is written from the average through the same kind,
with the averaged scores beside it; the ensemble's dev score is that of its dev predictions.
"""

from pathlib import Path

from clue import predictions
from clue.paths import OutputDirs


def build(task, run_dirs, results):
    """Write ``task``'s ensemble files into ``results``; returns {"dev": dev score in percent or None,
    "outputs": leaderboard files written, "missing": "<file>: why" for the files left out}."""
    results = Path(results)
    written, missing, dev = [], [], None
    for name in (predictions.dev_name(task.name), *task.output_names()):
        saved = [predictions.scores_path(OutputDirs(d).results / name) for d in run_dirs]
        absent = [str(p) for p in saved if not p.is_file()]
        if len(absent) == len(saved):
            continue                      # no run wrote it (that test file is not in the data)
        if absent:
            missing.append(f"{name}: no saved scores in {', '.join(absent)}")
            continue
        merged = predictions.average([predictions.load(p) for p in saved], names=[str(p) for p in saved])
        merged.write(results / name)
        if name == predictions.dev_name(task.name):
            dev = round(100 * merged.score(task.metric), 2)
        else:
            written.append(name)
    return {"dev": dev, "outputs": written, "missing": missing}
