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
import shutil
from pathlib import Path

from clue import registry
from clue.paths import MissingPathError, atomic_path, write_atomic

BUILTIN_VOCAB = "builtin"
DESCRIPTION_SUFFIX = ".model.json"


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
    return weights_path.with_name(weights_path.name.replace(".weights.h5", DESCRIPTION_SUFFIX))


def find_description(run_dir, task=None):
    """The ``weights/<task>.model.json`` of the output folder ``run_dir``: ``task``'s, or with ``task`` None
    the folder's only one. A MissingPathError says what the folder holds otherwise (``--task`` picks one)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise MissingPathError(f"{run_dir}: no such folder (give the --output-dir of a training run)")
    weights = run_dir / "weights"
    found = {p.name[:-len(DESCRIPTION_SUFFIX)]: p for p in sorted(weights.glob(f"*{DESCRIPTION_SUFFIX}"))}
    held = f"it holds the models of {', '.join(found)}" if found else "it holds no model (train into it first)"
    if task is not None:
        name = registry.get(task).name
        if name not in found:
            raise MissingPathError(f"{weights}: no {name}{DESCRIPTION_SUFFIX}: {held}")
        return found[name]
    if len(found) != 1:
        raise MissingPathError(f"{weights}: {held}" + ("; pick one with --task" if found else ""))
    return next(iter(found.values()))


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


def write_vocab(description, path, where="the description"):
    """The vocabulary of the run ``description`` (read from ``where``) as a vocab.txt at ``path``: the run's
    file copied byte for byte, or the built-in one written out a token a line."""
    vocab = description["vocab"]
    if vocab == BUILTIN_VOCAB:
        from clue.tokenizer import builtin_vocab

        return write_atomic(path, "".join(f"{token}\n" for token in builtin_vocab()))
    if not Path(vocab).is_file():
        raise MissingPathError(f"{where}: its vocabulary {vocab} is not there any more")
    with atomic_path(path) as tmp:
        shutil.copyfile(vocab, tmp)
    return Path(path)
