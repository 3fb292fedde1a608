"""clue: CLUE (Chinese GLUE) baselines on Keras 3, numerically equal to bert4keras 0.11.5."""

__version__ = "0.1.0"
