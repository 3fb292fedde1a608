"""Run any subset of the CLUE tasks with one model preset and shared flags, skipping finished tasks and
resuming interrupted ones, then write results/summary.json, results/summary.md and results/dev_curves.png:

    python scripts/run_clue.py --model tiny --epochs 1 --limit 300
    python scripts/run_clue.py afqmc tnews --model roberta-wwm-ext --model-dir ~/models/rbt

See ``clue/run_all.py`` (also installed as ``clue-run``).
"""

import sys

from clue.run_all import main

if __name__ == "__main__":
    sys.exit(main())
