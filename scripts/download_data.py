"""Download and unpack the official CLUE task zips: ``python scripts/download_data.py [TASK ...]``.

See ``clue/download.py`` (also installed as ``clue-download``).
"""

import sys

from clue.download import main

if __name__ == "__main__":
    sys.exit(main())
