"""Dev metrics, by the names the task registry uses. Each takes gold and predicted labels and returns a
fraction in [0, 1]."""

import numpy as np


def accuracy(golds, preds):
    golds, preds = list(golds), list(preds)
    if len(golds) != len(preds):
        raise ValueError(f"accuracy: {len(golds)} gold labels but {len(preds)} predictions")
    if not golds:
        raise ValueError("accuracy: no examples")
    return float(np.mean([g == p for g, p in zip(golds, preds)]))


METRICS = {"accuracy": accuracy}
