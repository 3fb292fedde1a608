"""Convert encoder weights between Google TF checkpoints, HF safetensors and Keras .weights.h5, or inspect one:

    python scripts/convert_checkpoint.py chinese_L-12_H-768_A-12/bert_model.ckpt bert.safetensors
    python scripts/convert_checkpoint.py --inspect bert.safetensors --config bert_config.json

See ``clue/convert.py`` (also installed as ``clue-convert``).
"""

import sys

from clue.convert import main

if __name__ == "__main__":
    sys.exit(main())
