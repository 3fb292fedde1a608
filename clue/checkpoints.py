"""Load encoder weights from the files CLUE users have.

- Google / ZhuiyiTechnology TF checkpoints (``bert_model.ckpt``), under the variable names bert4keras maps;
  extra variables (``bert/pooler/*``, ``cls/seq_relationship/*``, ``cls/predictions/*`` without ``with_mlm``,
  optimizer slots) are ignored on purpose.
- Hugging Face BERT / RoFormer weights in ``*.safetensors`` (BertModel / RoFormerModel key names, with or
  without the ``bert.`` / ``roformer.`` prefix; torch Linear weights are (out, in) and get transposed).
- Keras ``*.weights.h5`` written by ``model.save_weights``.

``pytorch_model.bin`` is a pickle, which can run code when loaded: it is refused with how to convert it.
"""

import json
import re
from pathlib import Path

import numpy as np


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model: names the file, the variable and the shapes."""


def variable_names(model):
    """[(keras variable, TF checkpoint name)] for every weight of an encoder built by clue.models."""
    pairs = []

    def add(layer_name, *weights):   # (attribute, checkpoint name) pairs; absent weights are skipped
        layer = _get(model, layer_name)
        if layer is None:
            return
        for attribute, name in weights:
            variable = getattr(layer, attribute, None)
            if variable is not None:
                pairs.append((variable, name))

    def dense(layer, name):
        return [(layer.kernel, f"{name}/kernel")] + ([(layer.bias, f"{name}/bias")] if layer.use_bias else [])

    def norm(layer_name, name):
        add(layer_name, ("gamma", f"{name}/gamma"), ("beta", f"{name}/beta"))

    add("Embedding-Token", ("embeddings", "bert/embeddings/word_embeddings"))
    add("Embedding-Segment", ("embeddings", "bert/embeddings/token_type_embeddings"))
    add("Embedding-Position", ("embeddings", "bert/embeddings/position_embeddings"))
    norm("Embedding-Norm", "bert/embeddings/LayerNorm")
    i = 0
    while (attention := _get(model, f"Transformer-{i}-MultiHeadSelfAttention")) is not None:
        prefix = f"bert/encoder/layer_{i}/"
        for layer, name in ((attention.query, "attention/self/query"), (attention.key, "attention/self/key"),
                            (attention.value, "attention/self/value"),
                            (attention.output_dense, "attention/output/dense")):
            pairs += dense(layer, prefix + name)
        norm(f"Transformer-{i}-MultiHeadSelfAttention-Norm", prefix + "attention/output/LayerNorm")
        feed_forward = _get(model, f"Transformer-{i}-FeedForward")
        pairs += dense(feed_forward.intermediate, prefix + "intermediate/dense")
        pairs += dense(feed_forward.output_dense, prefix + "output/dense")
        norm(f"Transformer-{i}-FeedForward-Norm", prefix + "output/LayerNorm")
        i += 1
    mlm_dense = _get(model, "MLM-Dense")
    if mlm_dense is not None:
        pairs += dense(mlm_dense, "cls/predictions/transform/dense")
    norm("MLM-Norm", "cls/predictions/transform/LayerNorm")
    add("MLM-Bias", ("bias", "cls/predictions/output_bias"))
    return pairs


def encoder_of(model):
    """The encoder a task model holds: the model itself when the encoder's layers are its own (the classifier
    and span heads), else the sub-model that holds them (the choice heads apply the encoder per choice)."""
    for candidate in (model, *(layer for layer in model.layers if hasattr(layer, "get_layer"))):
        if _get(candidate, "Embedding-Token") is not None:
            return candidate
    raise CheckpointError(f"{model.name}: no encoder in it (no layer Embedding-Token)")


def _get(model, name):
    try:
        return model.get_layer(name)
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------------------
# Readers: name -> numpy array, for each file format


class TFCheckpoint:
    def __init__(self, path):
        import tensorflow as tf   # a dependency on every backend; imported only when needed

        self.path = path
        try:
            self.reader = tf.train.load_checkpoint(str(path))
        except tf.errors.OpError as err:
            raise CheckpointError(f"{path}.index: not a readable TF checkpoint index ({_first_line(err.message)})"
                                  ) from None
        self.shapes = self.reader.get_variable_to_shape_map()
        self._check_data_files(self.reader.get_variable_to_dtype_map())

    def _check_data_files(self, dtypes):
        """The data shards hold at least the bytes the index lists (a truncated download would otherwise
        fail, or with a GPU read garbage, only when a tensor is read); reads file sizes only."""
        path = Path(self.path)
        shards = sorted(path.parent.glob(f"{path.name}.data-*-of-*"))
        count = int(shards[0].name.rsplit("-of-", 1)[1]) if shards else 1
        expected = [path.parent / f"{path.name}.data-{i:05d}-of-{count:05d}" for i in range(count)]
        missing = [str(shard) for shard in expected if not shard.is_file()]
        if missing:
            raise CheckpointError(f"{missing[0]}: missing, and {path}.index lists its tensors"
                                  + (f" ({len(missing)} shards missing)" if len(missing) > 1 else ""))
        needed = sum(dtypes[name].size * int(np.prod(shape)) for name, shape in self.shapes.items())
        size = sum(shard.stat().st_size for shard in expected)
        if size < needed:
            files = expected[0] if count == 1 else f"{path}.data-*-of-{count:05d}"
            raise CheckpointError(f"{files}: truncated: {size:,} bytes, but {path}.index lists {needed:,} bytes "
                                  f"of tensors (an interrupted download or copy?)")

    def describe(self, name):
        return repr(name)

    def shape(self, name):
        return tuple(self.shapes[name]) if name in self.shapes else None

    def get(self, name):
        import tensorflow as tf

        try:
            return self.reader.get_tensor(name)
        except (tf.errors.OpError, IndexError) as err:   # a corrupt data shard
            message = err.message if isinstance(err, tf.errors.OpError) else str(err)
            raise CheckpointError(f"{self.path}: cannot read variable {name!r} from its data file "
                                  f"({_first_line(message)})") from None


def _first_line(text):
    return str(text).strip().splitlines()[0] if str(text).strip() else "no message"


def hf_name(tf_name):
    """Google TF variable name -> Hugging Face BertModel / RoFormerModel key (prefix not included)."""
    if tf_name == "cls/predictions/output_bias":
        return "cls.predictions.bias"
    parts = tf_name.split("/")
    if parts[0] == "bert":
        parts = parts[1:]
    last = {"kernel": "weight", "gamma": "weight", "beta": "bias"}.get(parts[-1], parts[-1])
    if parts[-1].endswith("_embeddings"):
        parts.append("weight")
    else:
        parts[-1] = last
    return re.sub(r"layer_(\d+)", r"layer.\1", ".".join(parts))


class SafetensorsCheckpoint:
    """HF weights, read under their TF names (so one loader serves both)."""

    PREFIXES = ("bert.", "roformer.")

    def __init__(self, path):
        from safetensors import SafetensorError, safe_open

        self.path = path
        try:
            self.file = safe_open(str(path), framework="np")
        except SafetensorError as err:
            raise CheckpointError(f"{path}: not a readable safetensors file ({err}; truncated, or not "
                                  f"safetensors?)") from None
        self.keys = {}
        for key in self.file.keys():
            short = next((key[len(p):] for p in self.PREFIXES if key.startswith(p)), key)
            short = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", short)   # older HF names
            self.keys[re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", short)] = key

    def describe(self, name):
        return f"{hf_name(name)!r} (TF name {name!r})"

    def _transposed(self, name):   # torch Linear stores (out, in)
        return name.endswith("/kernel")

    def shape(self, name):
        key = self.keys.get(hf_name(name))
        if key is None:
            return None
        shape = tuple(self.file.get_slice(key).get_shape())
        return shape[::-1] if self._transposed(name) else shape

    def get(self, name):
        key = self.keys[hf_name(name)]
        if self.file.get_slice(key).get_dtype() == "BF16":   # numpy has no bfloat16
            value = _bfloat16_as_float32(self.path, key)
        else:
            value = self.file.get_tensor(key)
        return value.T if self._transposed(name) else value


def _bfloat16_as_float32(path, key):
    """Read one BF16 tensor from a safetensors file (8-byte header size, JSON header, raw data): a bfloat16
    is the top half of a float32."""
    with open(path, "rb") as file:
        size = int.from_bytes(file.read(8), "little")
        entry = json.loads(file.read(size))[key]
        begin, end = entry["data_offsets"]
        file.seek(8 + size + begin)
        raw = np.frombuffer(file.read(end - begin), dtype="<u2")
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(entry["shape"])


def open_checkpoint(path):
    path = Path(path)
    if path.suffix in (".bin", ".pt", ".pth", ".pkl"):
        raise CheckpointError(
            f"{path}: refusing to unpickle a PyTorch file (loading a pickle can run arbitrary code). Convert it "
            f"once to safetensors where you trust it, e.g. with transformers: "
            f"AutoModel.from_pretrained(folder).save_pretrained(folder, safe_serialization=True), or with torch: "
            f"state = torch.load('{path.name}', weights_only=True); safetensors.torch.save_file("
            f"{{k: v.contiguous() for k, v in state.items()}}, 'model.safetensors'); then pass model.safetensors")
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise CheckpointError(f"{path}: no such safetensors file")
        return SafetensorsCheckpoint(path)
    if path.is_dir():
        import tensorflow as tf

        latest = tf.train.latest_checkpoint(str(path))
        if latest is None:
            raise CheckpointError(f"{path}: a folder without a TF checkpoint (no 'checkpoint' index file); "
                                  f"pass the checkpoint prefix, e.g. {path / 'bert_model.ckpt'}")
        path = Path(latest)
    if not Path(f"{path}.index").is_file():
        raise CheckpointError(f"{path}: no TF checkpoint here (looked for {path}.index); expected a TF "
                              f"checkpoint prefix, *.safetensors or *.weights.h5")
    return TFCheckpoint(path)


def count_layers(reader):
    """How many encoder layers a TF / safetensors checkpoint holds (layer_0, layer_1, ... in a row)."""
    layers = 0
    while reader.shape(f"bert/encoder/layer_{layers}/attention/self/query/kernel") is not None:
        layers += 1
    return layers


def stored_sizes(path):
    """(word-embedding rows or None, encoder layers) of a TF / safetensors checkpoint, read from its index or
    header only; None for a .weights.h5 (Keras checks its own layout when loading)."""
    if str(path).endswith(".h5"):
        return None
    reader = open_checkpoint(path)
    word = reader.shape("bert/embeddings/word_embeddings")
    return (word[0] if word else None), count_layers(reader)


def load_weights(model, path):
    """Load ``path`` into ``model`` (an encoder from clue.models). Every encoder weight must be found with
    the shape the config gives it; otherwise a CheckpointError names the variable and both shapes."""
    if str(path).endswith(".h5"):
        if not Path(path).is_file():
            raise CheckpointError(f"{path}: no such Keras weights file")
        model.load_weights(str(path))
        return model
    checkpoint = open_checkpoint(path)
    pairs = variable_names(model)
    for variable, name in pairs:   # check everything before assigning anything
        shape = checkpoint.shape(name)
        if shape is None:
            raise CheckpointError(f"{checkpoint.path}: missing variable {checkpoint.describe(name)} "
                                  f"needed by {variable.path}")
        if shape != tuple(variable.shape):
            raise CheckpointError(f"{checkpoint.path}: variable {checkpoint.describe(name)} has shape {shape} "
                                  f"but the config gives {variable.path} shape {tuple(variable.shape)}")
    for variable, name in pairs:
        variable.assign(np.asarray(checkpoint.get(name), dtype=variable.dtype))
    return model
