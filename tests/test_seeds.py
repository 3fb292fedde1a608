"""clue-run --seeds --ensemble on small real data (tiny preset, one epoch): the summary's per-seed scores and
spread against the runs' own logs; the ensemble of a run with itself writes that run's very files; the
ensemble of two seeds equals the average of their saved scores computed here by hand with numpy and scipy
(class probabilities, chid's assignment, cmrc2018's best spans, cluener's pair tables); the summary shows
published columns for a preset and none for tiny."""

import json
import statistics
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import small_clue
from clue import ensemble, metrics, registry, run_all
from clue.paths import OutputDirs

TASKS = ("afqmc", "chid", "cmrc2018", "cluener")     # one task per kind of saved scores
FLAGS = ["--model", "tiny", "--epochs", "1", "--limit", "24", "--maxlen", "64", "--batch-size", "8", "--quiet",
         "--", "--verbose", "0"]


@pytest.fixture(scope="module")
def seeds_run(tmp_path_factory, clue_data_dir):
    root = tmp_path_factory.mktemp("seeds")
    data = small_clue.build(clue_data_dir, root / "data")
    out = root / "out"
    code = run_all.main([*TASKS, "--seeds", "1,2", "--ensemble", "--data-dir", str(data), "--output-dir", str(out),
                         *FLAGS])
    return out, code


def saved(path):
    """(meta, arrays) of a .scores.npz, read with numpy alone."""
    with np.load(path, allow_pickle=False) as f:
        return json.loads(str(f["meta"])), {k: f[k] for k in f.files if k not in ("kind", "meta")}


def lines(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def files_of(task):
    return [f"dev/{task.name}_dev.json", *task.output_names()]


def test_summary_gives_each_seed_its_mean_and_spread(seeds_run):
    out, code = seeds_run
    assert code == 0
    result = json.loads((out / "results" / "summary.json").read_text())
    assert result["seeds"] == [1, 2] and result["ensemble"] is True
    per_seed = {1: [], 2: []}
    for name in TASKS:
        row, task = result["tasks"][name], registry.get(name)
        devs = []
        for seed, run in zip((1, 2), row["runs"]):
            state = json.loads((out / f"seed{seed}" / "logs" / f"{task.name}.state.json").read_text())
            assert run["seed"] == seed and run["status"] == "done" and run["dev"] == round(100 * state["best"], 2)
            devs.append(run["dev"])
            if name in small_clue.CLUE11_TASKS:
                per_seed[seed].append(run["dev"])
        assert row["dev"] == round(statistics.mean(devs), 2) and row["dev_std"] == round(statistics.stdev(devs), 2)
        assert row["published"] is None and row["difference"] is None           # tiny: nothing published
        written = row["runs"][0]["outputs"]               # the ensemble answers every test file the seeds did
        assert written and row["ensemble"]["outputs"] == written and row["ensemble"]["missing"] == []
        assert all((out / "results" / n).is_file() for n in written)
    averages = [round(statistics.mean(v), 2) for v in per_seed.values()]
    avg = result["clue_average"]
    assert avg["tasks"] == ["afqmc", "chid", "cmrc2018"] and avg["per_seed"] == averages
    assert avg["value"] == round(statistics.mean(averages), 2) and avg["std"] == round(statistics.stdev(averages), 2)
    table = (out / "results" / "summary.md").read_text().splitlines()
    assert table[0] == "| task | metric | seed 1 | seed 2 | mean ± std | ensemble | runs done |"
    afqmc = result["tasks"]["afqmc"]
    assert (f"| afqmc | accuracy | {afqmc['runs'][0]['dev']:.2f} | {afqmc['runs'][1]['dev']:.2f} | "
            f"{afqmc['dev']:.2f} ± {afqmc['dev_std']:.2f} | {afqmc['ensemble']['dev']:.2f} | 2/2 |") in table
    assert not any("published" in line for line in table)
    import matplotlib.image
    assert matplotlib.image.imread(out / "results" / "dev_scores.png").shape[2] in (3, 4)


@pytest.mark.parametrize("name", TASKS)
def test_two_identical_seeds_ensemble_to_the_run_itself(seeds_run, name, tmp_path):
    out, _ = seeds_run
    task, run = registry.get(name), OutputDirs(out / "seed1")
    built = ensemble.build(task, [run.root, run.root], tmp_path)
    state = json.loads((run.logs / f"{task.name}.state.json").read_text())
    assert built["dev"] == round(100 * state["best"], 2) and not built["missing"]
    for file in files_of(task):
        if (run.results / file).is_file():
            assert (tmp_path / file).read_bytes() == (run.results / file).read_bytes(), file


def by_hand(name, runs):
    """The ensemble's predictions of one file, from the two runs' (meta, arrays) with numpy (and scipy)."""
    (meta, first), (_, second) = runs
    if name == "afqmc":
        probs = ((first["probs"].astype(np.float64) + second["probs"]) / 2).astype(np.float32)
        return [meta["classes"][i] for i in probs.argmax(-1)]
    if name == "chid":
        probs = ((first["probs"].astype(np.float64) + second["probs"]) / 2).astype(np.float32)
        picks, groups = [], np.array(meta["groups"])
        for group in dict.fromkeys(meta["groups"]):
            rows = np.flatnonzero(groups == group)
            r, c = linear_sum_assignment(-np.log(probs[rows].astype(np.float64) + 1e-12))
            picks += c[np.argsort(r)].tolist()
        return picks
    if name == "cmrc2018":
        answers = []
        for q, c in enumerate(meta["context_of"]):
            spans = {}      # (start, end) -> [score of run 1, score of run 2]; an unlisted span gets the run's bound
            for r, arrays in enumerate((first, second)):
                for a, b, s in zip(arrays["starts"][q], arrays["ends"][q], arrays["scores"][q]):
                    if np.isfinite(s):
                        spans.setdefault((a, b), [first["bound"][q], second["bound"][q]])[r] = s
            scored = [(np.mean(np.float64(v)), k) for k, v in spans.items()]
            best = max(scored, key=lambda x: x[0]) if scored else None       # first listed wins a tie
            text = meta["contexts"][c]
            answers.append(text[best[1][0]:best[1][1] + 1] if best is not None and np.isfinite(best[0]) else "")
        return answers
    tables = (first["tables"].astype(np.float64) + second["tables"].astype(np.float64)) / 2
    labels, offset = [], 0
    for n, text, where in zip(first["sizes"], meta["texts"], meta["where"]):
        label, pairs = {}, [(a, b) for a in range(n) for b in range(a, n)]
        for kind in meta["types"]:
            for a, b in pairs:
                if tables[offset] > 0:
                    entity = text[where[a][0]:where[b][1] + 1]
                    label.setdefault(kind, {}).setdefault(entity, []).append([where[a][0], where[b][1]])
                offset += 1
        labels.append(label)
    return labels


def read_predictions(name, path):
    if name in ("chid", "cmrc2018"):
        return list(json.loads(Path(path).read_text(encoding="utf-8")).values())
    return [row["label"] for row in lines(path)]


@pytest.mark.parametrize("name", TASKS)
def test_two_seeds_ensemble_to_the_average_of_their_saved_scores(seeds_run, name):
    out, _ = seeds_run
    task = registry.get(name)
    result = json.loads((out / "results" / "summary.json").read_text())["tasks"][name]
    for file in [f for f in files_of(task) if (out / "seed1" / "results" / f).is_file()]:
        stem = Path(file).with_suffix("").as_posix()
        runs = [saved(out / f"seed{s}" / "results" / f"{stem}.scores.npz") for s in (1, 2)]
        key = {"cluener": "tables", "cmrc2018": "scores"}.get(name, "probs")
        assert not np.array_equal(runs[0][1][key], runs[1][1][key])       # the seeds differ
        expected = by_hand(name, runs)
        assert read_predictions(name, out / "results" / file) == expected, file
        if file.startswith("dev/"):   # the ensemble's dev score is its dev predictions' score
            gold = runs[0][0]["gold"]
            assert result["ensemble"]["dev"] == round(100 * metrics.METRICS[task.metric](gold, expected), 2)


def write_logs(dirs, name, best, epochs=1):
    dirs.make()
    (dirs.logs / f"{name}.run.json").write_text(json.dumps({"flags": [], "status": "done", "wall_s": 3.0}))
    (dirs.logs / f"{name}.state.json").write_text(json.dumps({"metric": "accuracy", "best": best, "best_epoch": 1,
                                                              "epochs_done": epochs, "epochs": epochs}))


def namespace(tmp_path, model, seeds=None):
    return SimpleNamespace(model=model, model_dir=None, data_dir=None, epochs=None, batch_size=None, maxlen=None,
                           lr=None, limit=None, seed=None, output_dir=str(tmp_path), extra=[], seeds=seeds,
                           ensemble=False, grid=None, axes={})


@pytest.mark.parametrize("model", ["bert-base", "tiny"])
def test_summary_shows_published_columns_for_a_preset_and_none_for_tiny(tmp_path, model):
    """Logs as the task scripts leave them: afqmc 70% and tnews 57% dev, one run each; then two seeds."""
    dirs = OutputDirs(tmp_path)
    write_logs(dirs, "afqmc", 0.70)
    write_logs(dirs, "tnews", 0.57)
    result = run_all.summarise(["afqmc", "tnews"], namespace(tmp_path, model), dirs)
    table = (dirs.results / "summary.md").read_text()
    if model == "tiny":
        assert "published" not in table and result["tasks"]["afqmc"]["published"] is None
        assert table.splitlines()[-1].startswith("| **CLUE 1.1 average** (2 of 9 tasks) | | **63.50** |")
        return
    published = json.loads((Path(run_all.__file__).parent / "published.json").read_text())
    afqmc = published["dev"]["bert-base"]["afqmc"]["value"]
    tnews = published["dev"]["bert-base"]["tnews"]["value"]
    assert (afqmc, tnews) == (72.41, 56.80)                       # blog 9052's BERT row, as issue 17 gives it
    assert published["sources"][published["dev"]["bert-base"]["afqmc"]["source"]]["url"].endswith("/9052")
    assert table.splitlines()[0].endswith("| status | published dev | difference |")
    assert "| afqmc | accuracy | 70.00 | 1 | 1/1 | 3.0 | done | 72.41 | -2.41 |" in table
    assert "| tnews | accuracy | 57.00 | 1 | 1/1 | 3.0 | done | 56.80 | +0.20 |" in table
    average = round((afqmc + tnews) / 2, 2)
    assert f"| **63.50** | | | | | {average:.2f} | {round(63.5 - average, 2):+.2f} |" in table
    assert "https://kexue.fm/archives/9052" in table

    # two seeds: each seed's score, mean ± std, and the published number beside the mean
    for seed, best in ((1, 0.70), (2, 0.74)):
        write_logs(OutputDirs(tmp_path / f"seed{seed}"), "afqmc", best)
    result = run_all.summarise(["afqmc"], namespace(tmp_path, model, seeds=[1, 2]), dirs)
    assert result["tasks"]["afqmc"]["dev"] == 72.0 and result["tasks"]["afqmc"]["difference"] == round(72.0 - afqmc, 2)
    table = (dirs.results / "summary.md").read_text()
    assert "| afqmc | accuracy | 70.00 | 74.00 | 72.00 ± 2.83 | 2/2 | 72.41 | -0.41 |" in table
