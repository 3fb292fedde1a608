"""Convert encoder weights between Google TF checkpoints, Hugging Face safetensors and Keras ``.weights.h5``,
and inspect a weights file: its variables and shapes, the config they imply, and what a config leaves open.

Reading and the name mapping are ``clue.checkpoints``'s (TF names per encoder weight, ``hf_name`` for the
HF keys); this module adds the writers. A conversion builds the encoder (``clue.models``) with the source's
weights, writes every weight the encoder uses under the target's names, and reads the target back to check
each value. Variables the encoder does not use (the NSP pooler, optimizer slots) are named and left out.
"""

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from clue import registry, run_files
from clue.checkpoints import (CheckpointError, SafetensorsCheckpoint, TFCheckpoint, count_layers, encoder_of,
                              hf_name, load_weights, open_checkpoint, variable_names)
from clue.models import FAMILIES, REQUIRED, build_transformer_model, family_of
from clue.paths import FILE_MODE, WriteError, atomic_folder, write_atomic
from clue.presets import read_json

# Config entries no weight shape records: a config must give them (conversion does not need them).
NOT_IN_WEIGHTS = ("num_attention_heads", "hidden_act")
HF_PREFIX = {"bert": "bert.", "roformer": "roformer.", "roformer_v2": "roformer."}


def format_of(path):
    name = str(path)
    if name.endswith(".safetensors"):
        return "safetensors"
    if name.endswith(".h5"):
        return "h5"
    return "tf"


# ---------------------------------------------------------------------------------------------------------
# What a file holds


def file_shapes(path):
    """{name as stored in the file: shape} for a TF checkpoint, safetensors or .weights.h5 file."""
    if format_of(path) == "h5":
        import h5py

        shapes = {}
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, obj: shapes.__setitem__(name, tuple(obj.shape))
                         if isinstance(obj, h5py.Dataset) else None)
        return shapes
    reader = open_checkpoint(path)
    if isinstance(reader, TFCheckpoint):
        return {name: tuple(shape) for name, shape in reader.shapes.items()}
    return {key: tuple(reader.file.get_slice(key).get_shape()) for key in reader.keys.values()}


def stored_name(reader, tf_name):
    """The name ``tf_name`` has inside the file ``reader`` reads, or None when it is not there."""
    if isinstance(reader, SafetensorsCheckpoint):
        return reader.keys.get(hf_name(tf_name))
    return tf_name if tf_name in reader.shapes else None


def infer_config(reader):
    """(config, family, has_mlm) as far as the shapes of a TF / safetensors file tell them."""
    shape = reader.shape
    word = shape("bert/embeddings/word_embeddings")
    if word is None:
        raise CheckpointError(f"{reader.path}: no word embeddings ({reader.describe('bert/embeddings/word_embeddings')})"
                              f": not a BERT / RoFormer checkpoint")
    config = {"vocab_size": word[0], "hidden_size": word[1]}
    segments = shape("bert/embeddings/token_type_embeddings")
    if segments is not None:
        config["type_vocab_size"] = segments[0]
    positions = shape("bert/embeddings/position_embeddings")
    if positions is not None:
        config["max_position_embeddings"] = positions[0]
    layers = config["num_hidden_layers"] = count_layers(reader)
    if layers:
        config["intermediate_size"] = shape("bert/encoder/layer_0/intermediate/dense/kernel")[1]
    biased = shape("bert/encoder/layer_0/attention/self/query/bias") is not None
    family = "bert" if positions is not None else ("roformer" if biased else "roformer_v2")
    has_mlm = shape("cls/predictions/output_bias") is not None
    return config, family, has_mlm


def _read_config(config_path):
    return {} if config_path is None else read_json(config_path)


def config_gaps(inferred, config, config_path):
    """Lines saying where ``config`` disagrees with the weights or leaves out what a model needs."""
    where = config_path or "the config"
    lines = [f"{where}: {key} = {config[key]} but the weights say {value}"
             for key, value in inferred.items() if key in config and config[key] != value]
    lines += [f"{where}: no {key} (the weights say {value})"
              for key, value in inferred.items() if key not in config and key in REQUIRED]
    lines += [f"{where}: no {key}, which the weights do not record" for key in NOT_IN_WEIGHTS if key not in config]
    return lines


def _build(config, family, has_mlm):
    config = dict(config)
    config.setdefault("num_attention_heads", 1)   # no weight depends on the head count
    return build_transformer_model(config=config, model=family, with_mlm=has_mlm)


def _h5_match(path, config, families, shapes=None):
    """(model, family, has_mlm) whose .weights.h5 layout equals the file's, trying each family and MLM."""
    shapes = shapes or file_shapes(path)
    tried = []
    for family in families:
        for has_mlm in (False, True):
            model = _build(config, family, has_mlm)
            with tempfile.TemporaryDirectory() as tmp:
                probe = Path(tmp) / "probe.weights.h5"
                model.save_weights(str(probe))
                layout = file_shapes(probe)
            if layout == shapes:
                return model, family, has_mlm, []
            tried.append((family, has_mlm, layout))
    # the closest candidate, for the report
    family, has_mlm, layout = min(tried, key=lambda t: len(set(t[2].items()) ^ set(shapes.items())))
    diff = [f"{name}: the config gives {layout[name]}, the file has {shapes[name]}"
            for name in layout if name in shapes and layout[name] != shapes[name]]
    diff += [f"{name} {layout[name]}: missing from the file" for name in layout if name not in shapes]
    diff += [f"{name} {shapes[name]}: in the file, not in the model" for name in shapes if name not in layout]
    return None, family, has_mlm, diff


def inspect(path, config_path=None, family=None):
    """The report of ``--inspect`` as a list of lines."""
    path = Path(path)
    shapes = file_shapes(path)
    lines = [f"{path} ({format_of(path)}): {len(shapes)} variables, "
             f"{sum(int(np.prod(s)) for s in shapes.values()):,} values"]
    lines += [f"  {name}  {list(shape)}" for name, shape in sorted(shapes.items())]
    config = _read_config(config_path)
    if format_of(path) == "h5":
        if not config:
            lines.append("a .weights.h5 stores Keras layer paths, not the config: pass --config (and --family) "
                         "to check it against one")
            return lines
        families = [family_of(family)] if family else list(FAMILIES)
        model, fam, has_mlm, diff = _h5_match(path, config, families, shapes)
        if model is not None:
            lines.append(f"matches the {fam} encoder{' with MLM head' if has_mlm else ''} built from {config_path}")
        else:
            lines.append(f"does not match {config_path} (closest: {fam}{' with MLM head' if has_mlm else ''}):")
            lines += [f"  {d}" for d in diff]
        lines += config_gaps({}, config, config_path)
        return lines

    reader = open_checkpoint(path)
    inferred, fam, has_mlm = infer_config(reader)
    if family and family_of(family) != fam:
        lines.append(f"--family {family}, but the weights look like {fam} (position table, biases)")
    fam = family_of(family) if family else fam
    lines.append(f"family {fam}, MLM head weights: {'yes' if has_mlm else 'no'}")
    lines.append("config from the shapes: " + json.dumps(inferred))
    lines.append("not in the weights, a config must give: " + ", ".join(NOT_IN_WEIGHTS))
    lines += config_gaps(inferred, config, config_path)
    model = _build({**inferred, **config}, fam, has_mlm)
    used = set()
    for variable, name in variable_names(model):
        stored, shape = stored_name(reader, name), reader.shape(name)
        if stored is None:
            lines.append(f"missing: {reader.describe(name)} for {variable.path} {tuple(variable.shape)}")
        elif shape != tuple(variable.shape):
            lines.append(f"shape: {reader.describe(name)} is {shape}, the model wants {tuple(variable.shape)}")
        if stored is not None:
            used.add(stored)
    unused = sorted(set(shapes) - used)
    lines.append(f"the encoder uses {len(used)} of {len(shapes)} variables"
                 + (f"; not used: {', '.join(unused)}" if unused else ""))
    return lines


# ---------------------------------------------------------------------------------------------------------
# Writers (each writes beside the target and renames, so a crash never leaves a half file)


def _tmp_beside(path, suffix):
    fd, tmp = tempfile.mkstemp(prefix=f".{Path(path).name}.", suffix=suffix, dir=Path(path).parent)
    os.close(fd)
    os.unlink(tmp)
    return tmp


def write_tf(prefix, variables):
    """{TF name: array} as a TF checkpoint ``prefix.index`` + ``prefix.data-00000-of-00001`` and a
    ``checkpoint`` file naming it (what Google's zips hold)."""
    import tensorflow as tf

    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_beside(prefix, ".tmp")
    names = sorted(variables)
    tf.raw_ops.SaveV2(prefix=tmp, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[np.asarray(variables[n]) for n in names])
    os.replace(f"{tmp}.data-00000-of-00001", f"{prefix}.data-00000-of-00001")
    os.replace(f"{tmp}.index", f"{prefix}.index")   # last: readers look for the index
    state = prefix.parent / "checkpoint"
    tmp_state = _tmp_beside(state, ".tmp")
    Path(tmp_state).write_text(f'model_checkpoint_path: "{prefix.name}"\n'
                               f'all_model_checkpoint_paths: "{prefix.name}"\n')
    os.replace(tmp_state, state)
    return prefix


def write_safetensors(path, variables, prefix=""):
    """{TF name: array} under HF BertModel / RoFormerModel keys (``prefix`` before encoder keys; torch
    Linear kernels stored (out, in))."""
    from safetensors.numpy import save_file

    tensors = {}
    for name, value in variables.items():
        key = hf_name(name)
        key = key if key.startswith("cls.") else prefix + key
        tensors[key] = np.ascontiguousarray(value.T if name.endswith("/kernel") else value)
    tmp = _tmp_beside(path, ".tmp")
    save_file(tensors, tmp, metadata={"format": "pt"})
    os.chmod(tmp, FILE_MODE)   # safetensors writes 0600, which would hide the file from others
    os.replace(tmp, path)
    return Path(path)


def write_h5(model, path):
    tmp = _tmp_beside(path, ".weights.h5")
    model.save_weights(tmp)
    os.replace(tmp, path)
    return Path(path)


# ---------------------------------------------------------------------------------------------------------
# Conversion


def load_source(src, config_path=None, family=None):
    """(model holding the source weights, its config, family, has_mlm, source variables left out, notes)."""
    config = _read_config(config_path)
    if format_of(src) == "h5":
        if not config:
            raise CheckpointError(f"{src}: a .weights.h5 does not record the config: pass --config")
        families = [family_of(family)] if family else list(FAMILIES)
        model, fam, has_mlm, diff = _h5_match(src, config, families)
        if model is None:
            raise CheckpointError(f"{src} does not fit {config_path}: " + "; ".join(diff[:5]))
        model.load_weights(str(src))
        return model, config, fam, has_mlm, [], []
    reader = open_checkpoint(src)
    inferred, fam, has_mlm = infer_config(reader)
    fam = family_of(family) if family else fam
    notes = config_gaps(inferred, config, config_path) if config else [
        "no --config: shapes read from the file (" + json.dumps(inferred) + ")"]
    config = {**inferred, **config}
    model = _build(config, fam, has_mlm)
    load_weights(model, src)
    used = {stored_name(reader, name) for _, name in variable_names(model)}
    dropped = sorted(set(file_shapes(src)) - used)
    return model, config, fam, has_mlm, dropped, notes


def write_checked(model, config, fam, has_mlm, dst):
    """Write the encoder ``model``'s weights to ``dst`` (format from its name), read them back and compare
    every value; returns (format, variables written)."""
    if format_of(dst) == "tf" and dst.suffix in (".bin", ".pt", ".pth"):
        raise CheckpointError(f"{dst}: writing PyTorch pickles is not supported; use .safetensors")
    if format_of(dst) == "h5" and not dst.name.endswith(".weights.h5"):
        raise CheckpointError(f"{dst}: Keras weights files must end in .weights.h5")
    values = {name: np.asarray(variable.numpy()) for variable, name in variable_names(model)}
    kind = format_of(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if kind == "tf":
        write_tf(dst, values)
    elif kind == "safetensors":
        write_safetensors(dst, values, HF_PREFIX[fam] if has_mlm else "")
    else:
        write_h5(model, dst)

    if kind == "h5":
        check = _build(config, fam, has_mlm)
        check.load_weights(str(dst))
        back = {name: np.asarray(v.numpy()) for v, name in variable_names(check)}
    else:
        reader = open_checkpoint(dst)
        back = {name: reader.get(name) for name in values}
    bad = [name for name in values if not np.array_equal(values[name], back[name])]
    if bad:
        raise CheckpointError(f"{dst}: read back differs for {', '.join(bad[:5])}")
    return kind, len(values)


def convert(src, dst, config_path=None, family=None, task=None):
    """Write ``src``'s encoder weights to ``dst`` (format from its name) and check them; returns report lines.
    ``src`` may be a training run's output folder (``task`` picks one of its models), or its ``.model.json`` or
    ``.weights.h5``: then the fine-tuned encoder is written (see ``convert_fine_tuned``)."""
    src, dst = Path(src), Path(dst)
    described = fine_tuned_description(src, config_path, task)
    if described is not None:
        return convert_fine_tuned(described, dst)
    if task is not None:
        raise CheckpointError(f"--task {task}: {src} is not a training run's output folder")
    model, config, fam, has_mlm, dropped, notes = load_source(src, config_path, family)
    kind, count = write_checked(model, config, fam, has_mlm, dst)
    lines = notes + [f"{src} -> {dst} ({kind}): {fam} encoder{' with MLM head' if has_mlm else ''}, "
                     f"{count} variables written and read back equal"]
    if dropped:
        lines.append(f"left out (the encoder does not use them): {', '.join(dropped)}")
    return lines


# ---------------------------------------------------------------------------------------------------------
# Fine-tuned encoders: a run's best weights (the whole task model), described by its .model.json


def fine_tuned_description(src, config_path=None, task=None):
    """The ``.model.json`` to convert when ``src`` is a training run's output folder, a ``.model.json``, or a
    ``.weights.h5`` with its ``.model.json`` beside it (or given as ``config_path``); None otherwise."""
    if src.is_dir() and (src / "weights").is_dir():
        return run_files.find_description(src, task)
    if src.name.endswith(run_files.DESCRIPTION_SUFFIX):
        described = src
    elif format_of(src) == "h5" and (config_path is None or str(config_path).endswith(run_files.DESCRIPTION_SUFFIX)):
        described = Path(config_path) if config_path is not None else run_files.description_path(src)
        if not described.is_file():
            return None
        weights = described.with_name(run_files.read_description(described)["weights"])
        if weights.resolve() != src.resolve():
            raise CheckpointError(f"{described}: describes {weights}, not {src}")
    else:
        return None
    held = run_files.read_description(described)["task"]
    if task is not None and registry.get(task).name != held:
        raise CheckpointError(f"--task {task}: {described} describes the {held} model")
    return described


def fine_tuned_encoder(described):
    """(the encoder, built from the run's config and holding the fine-tuned weights, the description, the task
    model's weights it leaves out) of the run model ``described`` (its ``.model.json``)."""
    from clue import predict

    if described.parent.name != "weights":
        raise CheckpointError(f"{described}: not in a run's weights/ folder (pass the run's output folder)")
    description = run_files.read_description(described)
    model = predict.load(described.parent.parent, task=description["task"]).model
    trained = {name: variable for variable, name in variable_names(encoder_of(model))}
    encoder = build_transformer_model(config=description["model"]["config"], model=description["model"]["family"])
    for variable, name in variable_names(encoder):
        variable.assign(trained[name])
    kept = {id(v) for v in trained.values()}
    return encoder, description, [v.path for v in model.weights if id(v) not in kept]


FINE_TUNED_FILES = ("bert_config.json", "vocab.txt", "preset.json")


def convert_fine_tuned(described, dst):
    """Write the encoder of the run model ``described`` (its ``.model.json``) to ``dst`` (format from its
    name), its head left out, with ``bert_config.json``, ``vocab.txt`` and ``preset.json`` beside it: a model
    folder for ``--model <folder>/preset.json --model-dir <folder>``. The folder must be new or empty; it is
    written under a temporary name and renamed when complete."""
    folder = dst.parent
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise WriteError(f"{folder}: not an empty folder; a fine-tuned encoder goes into a new one "
                         f"({dst.name}, {', '.join(FINE_TUNED_FILES)})")
    encoder, description, dropped = fine_tuned_encoder(described)
    model, family = description["model"], description["model"]["family"]
    with atomic_folder(folder) as tmp:   # replaces the empty folder, if any
        kind, count = write_checked(encoder, model["config"], family, False, tmp / dst.name)
        write_atomic(tmp / "bert_config.json", json.dumps(model["config"], indent=1) + "\n")
        run_files.write_vocab(description, tmp / "vocab.txt", described)
        preset = {"name": f"{model['name']}-{description['task']}", "family": family,
                  "description": f"the encoder of {description['task']} fine-tuned from {model['name']} "
                                 f"({described.parent.parent.resolve()})",
                  "files": {"config": "bert_config.json", "checkpoint": dst.name, "vocab": "vocab.txt"},
                  "do_lower_case": model["do_lower_case"]}
        write_atomic(tmp / "preset.json", json.dumps(preset, indent=1, ensure_ascii=False) + "\n")
    return [f"{described} -> {dst} ({kind}): the fine-tuned {family} encoder of {description['task']}, {count} "
            f"variables written and read back equal, with {', '.join(FINE_TUNED_FILES)}",
            f"left out (the task head): {', '.join(dropped)}",
            f"train from it: --model {folder / 'preset.json'} --model-dir {folder}"]


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(
        description="Convert encoder weights between a Google TF checkpoint (a prefix such as "
                    "bert_model.ckpt), HF safetensors (*.safetensors) and Keras *.weights.h5; or --inspect one. "
                    "From a training run's output folder (or its weights/<task>.weights.h5 or .model.json): its "
                    "fine-tuned encoder, the task head left out, into a new model folder with bert_config.json, "
                    "vocab.txt and preset.json (--model FOLDER/preset.json --model-dir FOLDER).")
    parser.add_argument("source", help="weights file (TF checkpoint prefix or folder, .safetensors, .weights.h5), "
                                       "or a training run's output folder")
    parser.add_argument("target", nargs="?", help="output; its name picks the format")
    parser.add_argument("--config", help="bert_config.json / config.json (default: one beside the source); "
                                         "for a run's .weights.h5, its .model.json (default: the one beside it)")
    parser.add_argument("--family", choices=tuple(FAMILIES), help="default: read off the weights")
    parser.add_argument("--task", help="which model of a run folder holding several")
    parser.add_argument("--inspect", action="store_true", help="list variables and shapes and check a config")
    args = parser.parse_args(argv)

    config = args.config
    if config is None:
        folder = Path(args.source) if Path(args.source).is_dir() else Path(args.source).parent
        config = next((str(folder / n) for n in ("bert_config.json", "config.json") if (folder / n).is_file()), None)
    from clue import cli

    try:
        if args.inspect:
            lines = inspect(args.source, config, args.family)
        else:
            if not args.target:
                parser.error("give a target file, or --inspect")
            lines = convert(args.source, args.target, config, args.family, args.task)
    except (*cli.user_errors(), ValueError, OSError, KeyError) as err:
        print(f"error: {err.args[0] if isinstance(err, KeyError) else err}")
        return 1
    print("\n".join(lines))
    return 0
