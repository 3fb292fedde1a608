"""Check the leaderboard files in results/ against their test files and write submit.zip:

    python scripts/make_submission.py --results results --data-dir datasets
    python scripts/make_submission.py --cluener          # cluener_predict.json, submitted on its own

Every problem is listed and nothing is written while there is one. See ``clue/submit_check.py``.
"""

import sys

from clue.submit_check import main

if __name__ == "__main__":
    sys.exit(main())
