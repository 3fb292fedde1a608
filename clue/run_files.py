"""What a run leaves in ``weights/`` for later use: the best weights ``<task>.weights.h5`` (the model's
weights only) and beside them ``<task>.model.json``, what rebuilds that model without the run's flags:

    {"task": "afqmc", "weights": "afqmc.weights.h5",
     "model": {"preset": "tiny", "name": "tiny", "family": "bert", "preset_path": ".../configs/tiny.json",
               "config": {... the encoder config as built, vocab_size included ...},
               "pretrained": null, "do_lower_case": true},
     "vocab": "builtin",                      # or the vocab.txt path
     "maxlen": 128, "batch_size": 32, "labels": ["0", "1"],
     "framing": {"pooling": "cls", "second_segment": 0},
     "mixed_precision": null, "versions": {"clue": "0.1.0", "keras": "3.15.1", "backend": "tensorflow"}}

Paths are absolute as the run resolved them; ``pretrained`` is the checkpoint the fine-tuning started from
(informative: the weights file holds every weight).
"""

import json
from pathlib import Path

from clue import registry
from clue.paths import MissingPathError, write_atomic

BUILTIN_VOCAB = "builtin"


def weights_path(weights_dir, task_name):
    """``weights/<task>.weights.h5``: the best dev epoch's model weights."""
    return Path(weights_dir) / f"{task_name}.weights.h5"


def backup_path(weights_dir, task_name):
    """``weights/<task>_backup/``: Keras's BackupAndRestore folder (weights and optimizer state of the last
    finished epoch), there while a run is unfinished (or kept with --keep-backup)."""
    return Path(weights_dir) / f"{task_name}_backup"


def description_path(weights_path):
    """``weights/<task>.model.json`` beside ``weights/<task>.weights.h5``."""
    weights_path = Path(weights_path)
    return weights_path.with_name(weights_path.name.replace(".weights.h5", ".model.json"))


def find_description(run_dir, task=None):
    """The ``.model.json`` of ``task`` in the output folder ``run_dir`` (``task`` may be left out when the
    folder holds one task's model), or a MissingPathError saying what is there."""
    weights = Path(run_dir) / "weights"
    found = sorted(weights.glob("*.model.json"))
    if task is not None:
        name = registry.get(task).name
        found = [p for p in found if p.name == f"{name}.model.json"]
    if len(found) != 1:
        what = f"{task}'s model" if task else "a model"
        raise MissingPathError(f"{weights}: {what} is described by {len(found) or 'no'} .model.json files "
                               + ("(pass task=...)" if found else "(train with this --output-dir first)"))
    return found[0]


def _path(value):
    return None if value is None else str(Path(value).resolve())


def describe(run):
    """The model description of ``run`` (a ``clue.cli.Run``), as JSON-ready values."""
    import keras

    import clue
    args, spec = run.args, run.spec
    return {
        "task": run.task.name,
        "weights": run.weights_path.name,
        "model": {"preset": args.model, "name": spec.name, "family": spec.family,
                  "preset_path": _path(spec.preset_path),
                  "config": run.config,
                  "pretrained": _path(spec.checkpoint_path), "do_lower_case": spec.do_lower_case},
        "vocab": _path(spec.vocab_path) or BUILTIN_VOCAB,
        "maxlen": args.maxlen,
        "batch_size": args.batch_size,
        "labels": list(run.task.labels) if run.task.labels is not None else None,
        "framing": {"pooling": args.pooling, "second_segment": args.second_segment},
        "mixed_precision": args.mixed_precision,
        "versions": {"clue": clue.__version__, "keras": keras.__version__, "backend": keras.backend.backend()},
    }


def write_description(weights_path, description):
    """``description`` as ``<task>.model.json`` beside ``weights_path``; returns its path."""
    path = description_path(weights_path)
    write_atomic(path, json.dumps(description, indent=1, ensure_ascii=False) + "\n")
    return path


def read_description(path):
    """The description in ``path`` (a ``.model.json``)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
