"""Export a trained model (``.keras``, TensorFlow SavedModel or ONNX) with its vocabulary and labels:

    python scripts/export.py --run runs/rbt --task tnews --format onnx --out tnews_onnx

See ``clue/export.py`` (also installed as ``clue-export``).
"""

import sys

from clue.export import main

if __name__ == "__main__":
    sys.exit(main())
