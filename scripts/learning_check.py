"""Learning check (not CI): the tiny preset, trained from scratch on the real TNEWS train set, must beat the
majority-class dev accuracy by a clear margin.

    python scripts/learning_check.py --data-dir ../shared/clue_data [--epochs 5] [--margin 0.10]
    python scripts/learning_check.py --optimizer adafactor --lr 5e-4   # the baselines' optimizer and rate
    python scripts/learning_check.py --rdrop 1                         # other flags go to tasks/tnews.py

Runs tasks/tnews.py in-process with the tiny preset (random init, built-in vocabulary), by default with
AdamW at 1e-3 (the demo's setting for a model trained from scratch), then prints the majority-class
baseline, the best dev accuracy, the epochs and the wall time. Exits 1 when the margin is not reached.
"""

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tasks"))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=os.environ.get("CLUE_DATA_DIR", str(REPO.parent / "shared" / "clue_data")))
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--margin", type=float, default=0.10, help="required gain over the majority class")
    p.add_argument("--output-dir", help="default: a temporary folder")
    p.add_argument("--limit", type=int, help="at most N examples per split (a quicker, weaker check)")
    p.add_argument("--optimizer", choices=("adamw", "adafactor"), default="adamw")
    p.add_argument("--lr", type=float, default=1e-3)
    args, extra = p.parse_known_args()   # the rest (a trick: --rdrop 1, --fgm 1, ...) goes to tnews.py

    import tnews
    from clue.paths import find_task_dir
    from clue.registry import get

    task = get("tnews")
    files = task.find_files(find_task_dir(task.name, args.data_dir))
    train, dev = (task.read(files[split])[:args.limit] for split in ("train", "dev"))
    majority, _ = collections.Counter(r["label"] for r in train).most_common(1)[0]
    baseline = sum(r["label"] == majority for r in dev) / len(dev)
    print(f"tnews: {len(train)} train, {len(dev)} dev; majority class {majority} (from train) "
          f"scores {baseline:.2%} on dev", flush=True)

    output = args.output_dir or tempfile.mkdtemp(prefix="learning_check_")
    start = time.time()
    flags = ["--data-dir", args.data_dir, "--output-dir", output, "--model", "tiny", "--epochs", str(args.epochs),
             "--optimizer", args.optimizer, "--lr", str(args.lr), "--maxlen", "64", "--verbose", "2"]
    if args.limit:
        flags += ["--limit", str(args.limit)]
    flags += extra
    best = tnews.main(flags)
    wall = time.time() - start
    history = json.loads((Path(output) / "logs" / "tnews.state.json").read_text())["history"]

    print(f"majority-class dev accuracy: {baseline:.2%}")
    print(f"tiny from scratch, {args.optimizer} at {args.lr:g} {' '.join(extra)}, best dev accuracy: {best:.2%} (per epoch: "
          f"{', '.join(f'{h:.2%}' for h in history)})")
    print(f"epochs: {args.epochs}; wall time: {wall / 60:.1f} min; outputs in {output}")
    if best < baseline + args.margin:
        print(f"FAIL: {best:.2%} is not {args.margin:.0%} above the majority class {baseline:.2%}")
        return 1
    print(f"OK: {best - baseline:+.2%} over the majority class")
    return 0


if __name__ == "__main__":
    sys.exit(main())
