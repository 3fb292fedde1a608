"""Model presets: ``configs/<name>.json`` names a family and the files inside a model folder.

``--model`` takes a preset name (``tiny``, ``bert-base``, ...) or a path to such a JSON file. A preset
either carries its encoder config inline and is randomly initialised (``tiny``), or lists the file names
to find in the model folder (``--model-dir`` / ``$CLUE_MODEL_DIR``).
"""

import json
from dataclasses import dataclass
from pathlib import Path

from clue.paths import MissingPathError, model_root

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
FAMILIES = ("bert", "roformer", "roformer_v2")


@dataclass
class ModelSpec:
    """Everything needed to build the encoder and its tokenizer."""

    name: str
    family: str
    config: dict                      # the encoder config (bert_config.json contents)
    config_path: Path | None = None   # None for inline configs
    checkpoint_path: Path | None = None
    vocab_path: Path | None = None    # None: the built-in character vocabulary
    do_lower_case: bool = True


def preset_names():
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def load_preset(name_or_path):
    """The preset dict for a name in ``configs/`` or a path to a preset JSON file."""
    path = Path(name_or_path)
    if not path.suffix == ".json" or not path.is_file():
        path = CONFIG_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise MissingPathError(
            f"--model {name_or_path!r} is neither a preset ({', '.join(preset_names())}) "
            f"nor a preset JSON file"
        )
    try:
        preset = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: not valid JSON: {err.msg}") from None
    if preset.get("family") not in FAMILIES:
        raise ValueError(f"{path}: 'family' must be one of {FAMILIES}, got {preset.get('family')!r}")
    if ("config" in preset) == ("files" in preset):
        raise ValueError(f"{path}: a preset has either an inline 'config' or a 'files' table, not both or neither")
    preset.setdefault("name", path.stem)
    preset["_path"] = str(path)
    return preset


def resolve_model(name_or_path, model_dir=None):
    """A ModelSpec with every file checked; missing ones raise MissingPathError naming what to set."""
    preset = load_preset(name_or_path)
    family = preset["family"]
    lower = preset.get("do_lower_case", True)
    if "config" in preset:
        config = dict(preset["config"])
        vocab = preset.get("vocab", "builtin")
        vocab_path = None if vocab == "builtin" else Path(vocab)
        root, _ = model_root(model_dir)
        if vocab_path is None and root is not None and (root / "vocab.txt").is_file():
            vocab_path = root / "vocab.txt"   # a real vocabulary beats the built-in one
        return ModelSpec(preset["name"], family, config, vocab_path=vocab_path, do_lower_case=lower)

    root, source = model_root(model_dir)
    files = preset["files"]
    if root is None:
        raise MissingPathError(
            f"preset {preset['name']!r} needs its pretrained files ({', '.join(files.values())}) but {source}: "
            f"set --model-dir or $CLUE_MODEL_DIR to the unpacked checkpoint folder, or use --model tiny"
        )
    if not root.is_dir():
        raise MissingPathError(f"model folder {root} (from {source}) does not exist")
    config_path = root / files["config"]
    vocab_path = root / files["vocab"]
    checkpoint_path = root / files["checkpoint"]
    for path, what in ((config_path, "config"), (vocab_path, "vocabulary")):
        if not path.is_file():
            raise MissingPathError(f"no {what} file {path} (model folder from {source})")
    has_checkpoint = (
        checkpoint_path.is_file()
        or Path(f"{checkpoint_path}.index").is_file()
    )
    if not has_checkpoint:
        raise MissingPathError(
            f"no checkpoint {checkpoint_path} (looked for the file and {checkpoint_path}.index; "
            f"model folder from {source})"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{config_path}:{err.lineno}: not valid JSON: {err.msg}") from None
    return ModelSpec(preset["name"], family, config, config_path, checkpoint_path, vocab_path, lower)
