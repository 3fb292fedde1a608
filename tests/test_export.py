"""What a run trained, used outside its run folder: clue-export's .keras, SavedModel and ONNX files give the
model's outputs, and convert_checkpoint writes the fine-tuned encoder as a model folder that --model-dir
loads again (the tiny afqmc run of conftest's ``afqmc_run``, on the real data)."""

import importlib
import json
import os

import keras
import numpy as np
import pytest
from conftest import IN_CI

from clue import convert, export, predict, presets, run_files
from clue.export import outputs_of
from clue.models import build_from_spec
from clue.paths import FILE_MODE
from clue.tokenizer import Tokenizer, builtin_vocab

LENGTHS = (5, 23)   # two sequence lengths: the exported models take any


def need(module):
    """``module`` imported: a test dependency (setup.py's [test] extra), so missing it fails in CI."""
    try:
        return importlib.import_module(module)
    except ImportError:
        if IN_CI:
            raise
        pytest.skip(f"{module} is not installed (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def trained(afqmc_run):
    """The run's model as clue.predict rebuilds it, and random batches of each length in ``LENGTHS`` (the
    last row half padding, segment ids of two segments)."""
    _, out, _ = afqmc_run
    loaded = predict.load(out)
    model, vocab_size = loaded.model, loaded.tokenizer.vocab_size
    rng, batches = np.random.default_rng(5), []
    for length in LENGTHS:
        tokens = rng.integers(1, vocab_size, (3, length)).astype("int32")
        tokens[-1, length // 2:] = 0
        segments = (np.arange(length)[None, :] >= length // 3).astype("int32").repeat(3, axis=0)
        batches.append([tokens, segments])
    return model, [(batch, model.predict(batch, verbose=0)) for batch in batches]


@pytest.fixture(scope="module")
def exported(afqmc_run, trained, tmp_path_factory):
    """{format: the folder clue-export wrote}: the command line for .keras, the model already built (as the
    command line builds it) for the others."""
    _, run, _ = afqmc_run
    root = tmp_path_factory.mktemp("exported")
    need("onnxruntime")
    assert export.main(["--run", str(run), "--format", "keras", "--out", str(root / "keras")]) == 0
    description = run_files.read_description(run / "weights" / "afqmc.model.json")
    for fmt in ("saved_model", "onnx"):
        export.export(trained[0], fmt, root / fmt, description)
    return {fmt: root / fmt for fmt in export.FORMATS}


def exported_inputs(folder):
    """The input names of an exported model, as its model.json gives them."""
    return [i["name"] for i in json.loads((folder / "model.json").read_text(encoding="utf-8"))["export"]["inputs"]]


def test_keras_file_reloads_to_the_same_outputs(exported, trained):
    model, batches = trained
    reloaded = keras.saving.load_model(exported["keras"] / "model.keras")
    for batch, expected in batches:
        np.testing.assert_array_equal(outputs_of(reloaded, batch), outputs_of(model, batch))
        np.testing.assert_allclose(outputs_of(reloaded, batch), expected, rtol=0, atol=1e-6)


def test_saved_model_gives_the_model_outputs(exported, trained):
    import tensorflow as tf

    serving = tf.saved_model.load(str(exported["saved_model"] / "saved_model")).signatures["serving_default"]
    names = exported_inputs(exported["saved_model"])
    for batch, expected in trained[1]:
        (found,) = serving(**{name: tf.constant(x) for name, x in zip(names, batch)}).values()
        np.testing.assert_allclose(found.numpy(), expected, rtol=0, atol=1e-5)


def test_onnx_gives_the_model_outputs(exported, trained):
    onnxruntime = need("onnxruntime")
    session = onnxruntime.InferenceSession(str(exported["onnx"] / "model.onnx"), providers=["CPUExecutionProvider"])
    names = exported_inputs(exported["onnx"])
    for batch, expected in trained[1]:
        (found,) = session.run(None, dict(zip(names, batch)))
        np.testing.assert_allclose(found, expected, rtol=0, atol=1e-5)


def test_the_folder_says_how_to_use_the_model(exported, afqmc_run):
    _, run, _ = afqmc_run
    description = run_files.read_description(run / "weights" / "afqmc.model.json")
    for fmt, folder in exported.items():
        written = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        assert written["labels"] == ["0", "1"] and written["maxlen"] == description["maxlen"]
        assert written["vocab"] == "vocab.txt" and "weights" not in written
        assert written["export"]["format"] == fmt and (folder / written["export"]["file"]).exists()
        assert written["export"]["outputs"][0]["shape"] == [None, 2]
    assert exported_inputs(exported["onnx"]) == ["Input-Token", "Input-Segment"]
    assert exported_inputs(exported["saved_model"]) == ["Input_Token", "Input_Segment"]
    # the tiny preset's built-in vocabulary, written out: the same ids from the file
    assert Tokenizer(str(exported["onnx"] / "vocab.txt")).vocab == Tokenizer(builtin_vocab()).vocab


def export_error(capsys, argv):
    assert export.main(argv) == 1
    out, err = capsys.readouterr()
    assert not out and len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err.strip()


def test_export_refuses_bad_input_with_one_line(afqmc_run, tmp_path, capsys, monkeypatch):
    _, run, _ = afqmc_run
    out = ["--format", "keras", "--out", str(tmp_path / "out")]
    assert export_error(capsys, ["--run", str(tmp_path / "no_run"), *out]) == \
        f"error: {tmp_path / 'no_run'}: no such folder (give the --output-dir of a training run)"
    two = tmp_path / "two"
    (two / "weights").mkdir(parents=True)
    for task in ("afqmc", "tnews"):
        (two / "weights" / f"{task}.model.json").symlink_to(run / "weights" / "afqmc.model.json")
    assert export_error(capsys, ["--run", str(two), *out]).endswith(
        "weights: it holds the models of afqmc, tnews; pick one with --task")
    assert export_error(capsys, ["--run", str(run), "--task", "csl", *out]).endswith(
        "weights: no csl.model.json: it holds the models of afqmc")
    (tmp_path / "taken").mkdir()
    assert export_error(capsys, ["--run", str(run), "--format", "keras", "--out", str(tmp_path / "taken")]) == \
        f"error: {tmp_path / 'taken'}: already exists; give --out a new folder"
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    for fmt in ("saved_model", "onnx"):
        assert export_error(capsys, ["--run", str(run), "--format", fmt, "--out", str(tmp_path / "out")]) == (
            f"error: --format {fmt} needs the TensorFlow backend (Keras's model.export); this is jax: "
            f"set KERAS_BACKEND=tensorflow, or use --format keras")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken", "two"]   # nothing written


def test_an_export_that_differs_or_fails_leaves_nothing(afqmc_run, trained, tmp_path, monkeypatch):
    _, run, _ = afqmc_run
    description = run_files.read_description(run / "weights" / "afqmc.model.json")
    real = export.run_exported

    def off_by_a_little(*args):
        outputs, *names = real(*args)
        return [o + 1e-3 for o in outputs], *names

    monkeypatch.setattr(export, "run_exported", off_by_a_little)
    with pytest.raises(export.ExportError, match=r"differs from the Keras model by 0\.001 .*nothing written"):
        export.export(trained[0], "keras", tmp_path / "out", description)
    def disk_full(model, fmt, path):
        path.write_bytes(b"half a model")
        raise OSError("disk full")

    monkeypatch.setattr(export, "write_model", disk_full)
    with pytest.raises(OSError, match="disk full"):
        export.export(trained[0], "keras", tmp_path / "out", description)
    assert list(tmp_path.iterdir()) == []   # no folder, no temporary one


def hidden_states(encoder, batches):
    return [outputs_of(encoder, batch) for batch, _ in batches]


@pytest.mark.parametrize("source, target", [("run", "tf/bert_model.ckpt"),
                                            ("weights", "safetensors/model.safetensors")])
def test_fine_tuned_encoder_reloads_through_model_dir(afqmc_run, trained, tmp_path, capsys, source, target):
    _, run, _ = afqmc_run
    model, batches = trained
    src = run if source == "run" else run / "weights" / "afqmc.weights.h5"   # a run folder, or its weights
    assert convert.main([str(src), str(tmp_path / target)]) == 0
    printed = capsys.readouterr().out
    assert "left out (the task head): classifier/kernel, classifier/bias" in printed
    folder = (tmp_path / target).parent
    spec = presets.resolve_model(folder / "preset.json", folder)   # as --model F/preset.json --model-dir F
    assert spec.checkpoint_path == tmp_path / target and spec.family == "bert"
    reloaded = build_from_spec(spec, Tokenizer(str(spec.vocab_path)).vocab_size)
    fine_tuned = keras.Model(model.inputs, model.get_layer("Transformer-1-FeedForward-Norm").output)
    for found, expected in zip(hidden_states(reloaded, batches), hidden_states(fine_tuned, batches)):
        np.testing.assert_array_equal(found, expected)
    assert all(os.stat(p).st_mode & 0o777 == FILE_MODE for p in folder.iterdir() if p.is_file())
    # a second conversion into the same folder is refused: it would mix two models' files
    assert convert.main([str(src), str(tmp_path / target)]) == 1
    assert capsys.readouterr().out.startswith(f"error: {folder}: not an empty folder")
