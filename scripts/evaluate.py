"""Score predictions against a labelled file with the task's metric:

    python scripts/evaluate.py TASK PREDICTIONS GOLD

The last line printed is ``<metric>: <value in percent>``. See ``clue/evaluate.py`` (also ``clue-evaluate``).
"""

import sys

from clue.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
