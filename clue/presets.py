"""Model presets: ``configs/<name>.json`` names a family and the files inside a model folder.

``--model`` takes a preset name (``tiny``, ``bert-base``, ...) or a path to such a JSON file. A preset
either carries its encoder config inline and is randomly initialised (``tiny``), or lists the file names
to find in the model folder (``--model-dir`` / ``$CLUE_MODEL_DIR``).
"""

import difflib
import json
from dataclasses import dataclass
from pathlib import Path

from clue.paths import MissingPathError, model_root

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
FAMILIES = ("bert", "roformer", "roformer_v2")
# The keys a preset may have, with their types; "files" names these three files of the model folder.
PRESET_KEYS = {"name": str, "family": str, "description": str, "config": dict, "files": dict, "vocab": str,
               "do_lower_case": bool}
FILE_KEYS = ("config", "checkpoint", "vocab")


class ConfigError(ValueError):
    """A preset or encoder config (bert_config.json) that cannot be used: names the file and the key."""


def unknown_key(where, key, known):
    """The ConfigError for a key not in ``known``, suggesting the closest known one."""
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return ConfigError(f"{where}: unknown key {key!r} ({hint}known: {', '.join(known)})")


def read_json(path):
    """The JSON object in ``path``; ConfigError naming the file and line when it is not one."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}:{err.lineno}: not valid JSON: {err.msg}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: expected a JSON object {{...}}, got {type(value).__name__}")
    return value


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
    preset_path: Path | None = None   # the preset JSON this came from


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
    preset = read_json(path)
    check_preset(preset, path)
    preset.setdefault("name", path.stem)
    preset["_path"] = str(path)
    return preset


def check_preset(preset, path):
    """Every key known and of its type, a family, and either an inline config or a complete files table."""
    for key, value in preset.items():
        if key not in PRESET_KEYS:
            if key in FILE_KEYS:
                raise ConfigError(f"{path}: {key!r} belongs in the 'files' table (\"files\": {{\"{key}\": ...}})")
            raise unknown_key(path, key, list(PRESET_KEYS))
        if not isinstance(value, PRESET_KEYS[key]):
            raise ConfigError(f"{path}: {key!r} must be a {_json_type(PRESET_KEYS[key])}, got {json.dumps(value)}")
    if preset.get("family") not in FAMILIES:
        raise ConfigError(f"{path}: 'family' must be one of {FAMILIES}, got {preset.get('family')!r}")
    if ("config" in preset) == ("files" in preset):
        raise ConfigError(f"{path}: a preset has either an inline 'config' or a 'files' table, not both or neither")
    if "files" in preset:
        if "vocab" in preset:
            raise ConfigError(f"{path}: 'vocab' is for presets with an inline 'config'; "
                              f"this one names its vocabulary in files.vocab")
        for key, value in preset["files"].items():
            if key not in FILE_KEYS:
                raise unknown_key(f"{path}: files", key, FILE_KEYS)
            if not isinstance(value, str):
                raise ConfigError(f"{path}: files.{key} must be a file name (a string), got {json.dumps(value)}")
        missing = [key for key in FILE_KEYS if key not in preset["files"]]
        if missing:
            raise ConfigError(f"{path}: the 'files' table lacks {', '.join(missing)} (it names {', '.join(FILE_KEYS)})")


def _json_type(kind):
    return {str: "string", dict: "JSON object", bool: "boolean (true / false)"}[kind]


def resolve_model(name_or_path, model_dir=None):
    """A ModelSpec with every file checked; missing ones raise MissingPathError naming what to set."""
    preset = load_preset(name_or_path)
    family = preset["family"]
    lower = preset.get("do_lower_case", True)
    preset_path = Path(preset["_path"])
    if "config" in preset:
        config = dict(preset["config"])
        vocab = preset.get("vocab", "builtin")
        vocab_path = None if vocab == "builtin" else preset_path.parent / Path(vocab).expanduser()
        if vocab_path is not None and not vocab_path.is_file():
            raise MissingPathError(f"{preset_path}: no vocabulary file {vocab_path} ('vocab' is read from the "
                                   f"preset's folder; \"builtin\" for the built-in character vocabulary)")
        root, _ = model_root(model_dir)
        if vocab_path is None and root is not None and (root / "vocab.txt").is_file():
            vocab_path = root / "vocab.txt"   # a real vocabulary beats the built-in one
        return ModelSpec(preset["name"], family, config, vocab_path=vocab_path, do_lower_case=lower,
                         preset_path=preset_path)

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
    config = read_json(config_path)
    return ModelSpec(preset["name"], family, config, config_path, checkpoint_path, vocab_path, lower, preset_path)
