"""Export a trained model for use outside this repository (``clue-export``, ``scripts/export.py``):

    clue-export --run runs/rbt --task tnews --format onnx --out tnews_onnx

``--out`` is a new folder holding the model file, ``vocab.txt`` (the run's vocabulary) and ``model.json``
(the run's ``weights/<task>.model.json``: labels, maxlen, framing, encoder config; with ``"vocab":
"vocab.txt"`` and an ``"export"`` entry naming the model file, its inputs and outputs):

- ``keras``: ``model.keras``, the whole model (every backend); load it with ``keras.saving.load_model`` after
  ``import clue.heads``, which registers this repository's layers.
- ``saved_model`` (TensorFlow): ``saved_model/``, for ``tf.saved_model.load`` or TF Serving.
- ``onnx`` (TensorFlow, with tf2onnx, onnx and onnxruntime installed): ``model.onnx``, for ONNX Runtime.

Inputs are int32 (batch, length) token ids and segment ids, any batch size and length; the output of a
classification task is (batch, labels) probabilities, in the order of ``labels``. The folder is written under
a temporary name and renamed when complete, after the exported model has been run on a random batch and
found equal (to 1e-5) to the Keras model.

``export(model, fmt, out, description)`` does the writing for any built model; the command line builds it
with ``clue.predict.load`` from the run folder alone.
"""

import importlib.util
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from clue import run_files
from clue.paths import WriteError, atomic_folder, write_atomic

FORMATS = ("keras", "saved_model", "onnx")
MODEL_FILES = {"keras": "model.keras", "saved_model": "saved_model", "onnx": "model.onnx"}
# What each format needs beyond the install: (backend, modules)
NEEDS = {"keras": (None, ()), "saved_model": ("tensorflow", ()),
         "onnx": ("tensorflow", ("tf2onnx", "onnx", "onnxruntime"))}
TOLERANCE = 1e-5


class ExportError(ValueError):
    """The exported model does not reproduce the Keras model's outputs."""


def check_format(fmt):
    """Raise ExportError when ``fmt`` cannot be written here (a backend or package it needs is missing)."""
    import keras

    backend, modules = NEEDS[fmt]
    if backend is not None and keras.backend.backend() != backend:
        raise ExportError(f"--format {fmt} needs the TensorFlow backend (Keras's model.export); this is "
                          f"{keras.backend.backend()}: set KERAS_BACKEND=tensorflow, or use --format keras")
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(f"--format {fmt} needs {', '.join(missing)}: pip install {' '.join(missing)} "
                          f"(setup.py's [onnx] extra has versions that work)")


def check_new(out):
    if os.path.lexists(out):
        raise WriteError(f"{out}: already exists; give --out a new folder")


def probe_inputs(model, vocab_size, seed=0):
    """A random batch for ``model``'s inputs: batch 2, length 9; the first input (token ids) in
    [1, vocab_size), the others (segment ids, masks) ones."""
    rng = np.random.default_rng(seed)
    batch = []
    for i, spec in enumerate(model.inputs):
        shape = [2 if axis == 0 else (9 if size is None else size) for axis, size in enumerate(spec.shape)]
        batch.append(rng.integers(1, vocab_size, shape).astype("int32") if i == 0 else np.ones(shape, "int32"))
    return batch


def outputs_of(model, inputs):
    """``model``'s outputs on one small batch, called directly (``predict`` would trace a graph first)."""
    import keras

    return keras.ops.convert_to_numpy(model(inputs, training=False))


def run_exported(fmt, path, model, inputs):
    """(outputs of ``model`` exported as ``fmt`` at ``path`` on ``inputs``, the names the exported model gives
    its inputs, in ``model.inputs``' order, and its outputs)."""
    if fmt == "keras":
        import keras

        loaded = keras.saving.load_model(path)
        return ([outputs_of(loaded, inputs)], [i.name for i in loaded.inputs], [o.name for o in loaded.outputs])
    if fmt == "saved_model":
        import tensorflow as tf

        signature = tf.saved_model.load(str(path)).signatures["serving_default"]
        key_of = {spec.name: key for key, spec in signature.structured_input_signature[1].items()}
        names = [key_of[i.name] for i in model.inputs]   # "Input-Token" is keyed "Input_Token"
        outputs = signature(**{name: tf.constant(x) for name, x in zip(names, inputs)})
        return [outputs[k].numpy() for k in sorted(outputs)], names, sorted(outputs)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in model.inputs]
    if sorted(names) != sorted(i.name for i in session.get_inputs()):
        raise ExportError(f"{path}: inputs {[i.name for i in session.get_inputs()]}, the model's are {names}")
    return (session.run(None, dict(zip(names, inputs))), names, [o.name for o in session.get_outputs()])


def write_model(model, fmt, path):
    if fmt == "keras":
        model.save(path)
        return
    from absl import logging   # tf.function warns once per input that "Input-Token" becomes "Input_Token"

    level = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)
    try:
        with warnings.catch_warnings():   # Keras's tf2onnx patch for numpy 2 touches np.object
            warnings.filterwarnings("ignore", message=".*np.object.*", category=FutureWarning)
            model.export(str(path), format="tf_saved_model" if fmt == "saved_model" else "onnx", verbose=False)
    finally:
        logging.set_verbosity(level)


def export(model, fmt, out, description):
    """Write ``model`` (built, its weights loaded) as ``fmt`` into the new folder ``out``, with ``vocab.txt``
    and ``model.json`` from the run's ``description``; returns the lines to print."""
    out = Path(out)
    check_format(fmt)
    check_new(out)
    name = MODEL_FILES[fmt]
    with atomic_folder(out) as tmp:
        probe = probe_inputs(model, description["model"]["config"]["vocab_size"])
        expected = outputs_of(model, probe)   # first: the ONNX export needs a model that has been called
        write_model(model, fmt, tmp / name)
        outputs, input_names, output_names = run_exported(fmt, tmp / name, model, probe)
        error = float(np.max(np.abs(outputs[0] - expected)))
        if not error <= TOLERANCE:
            raise ExportError(f"{out}: the exported model differs from the Keras model by {error:.3g} "
                              f"(more than {TOLERANCE}) on a random batch; nothing written")
        run_files.write_vocab(description, tmp / "vocab.txt")
        exported = {k: v for k, v in description.items() if k != "weights"}
        exported["vocab"] = "vocab.txt"
        exported["export"] = {
            "format": fmt, "file": name,
            "inputs": [{"name": n, "dtype": "int32", "shape": list(spec.shape)}
                       for n, spec in zip(input_names, model.inputs)],
            "outputs": [{"name": n, "shape": list(spec.shape)} for n, spec in zip(output_names, model.outputs)]}
        write_atomic(tmp / "model.json", json.dumps(exported, indent=1, ensure_ascii=False) + "\n")
        check_new(out)
    return [f"{out}: {description['task']} as {fmt} ({out / name}, vocab.txt, model.json); "
            f"outputs equal the Keras model's to {error:.1g} on a random batch"]


def main(argv=None):
    import argparse

    from clue import cli

    parser = argparse.ArgumentParser(
        prog="clue-export", description="Export a run's best model with its vocabulary and labels, to use "
                                        "without this repository's run folder.")
    parser.add_argument("--run", required=True, help="the training run's --output-dir")
    parser.add_argument("--task", help="which task's model (default: the folder's only one)")
    parser.add_argument("--format", required=True, choices=FORMATS,
                        help="keras: model.keras (any backend); saved_model, onnx: TensorFlow backend")
    parser.add_argument("--out", required=True, help="a new folder to write")
    args = parser.parse_args(argv)
    try:
        check_new(args.out)
        description_path = run_files.find_description(args.run, args.task)
        cli.import_keras(verbose=1)
        check_format(args.format)
        from clue import predict

        loaded = predict.load(args.run, task=run_files.read_description(description_path)["task"])
        lines = export(loaded.model, args.format, args.out, loaded.description)
    except (*cli.user_errors(), ValueError, KeyError) as err:
        print(f"error: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0
