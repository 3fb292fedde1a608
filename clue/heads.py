"""Task heads on top of the encoder's last hidden states.

Classification as the bert4keras CLUE baselines: pool the last layer ([CLS] by default, masked mean or max
as options), then a softmax Dense initialised like the encoder (``clue.layers.head_initializer``: RoFormerV2
has its own initializer).
"""

import keras
from keras import ops

from clue.layers import head_initializer
from clue.models import encoder_info


@keras.saving.register_keras_serializable(package="clue")
class Pooling(keras.layers.Layer):
    """(batch, len, hidden) -> (batch, hidden): the first ([CLS]) vector, or the mean / max over the
    non-padding positions (token id != 0)."""

    def __init__(self, mode="cls", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("cls", "avg", "max"):
            raise ValueError(f"pooling must be 'cls', 'avg' or 'max', got {mode!r}")
        self.mode = mode

    def call(self, hidden, token_ids):
        if self.mode == "cls":
            return hidden[:, 0]
        mask = ops.expand_dims(ops.cast(ops.not_equal(token_ids, 0), hidden.dtype), -1)
        if self.mode == "avg":
            return ops.sum(hidden * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)
        # max: padding gets a large negative (within float16 range) so it never wins
        return ops.max(hidden - (1.0 - mask) * 1e4, axis=1)

    def compute_output_shape(self, hidden_shape, token_ids_shape=None):
        return (hidden_shape[0], hidden_shape[2])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def classifier(encoder, num_classes, pooling="cls", seed=None):
    """encoder -> pooling -> Dense softmax; the returned model takes the encoder's [token_ids, segment_ids]."""
    info = encoder_info(encoder)
    token_ids = encoder.inputs[0]
    vector = Pooling(pooling, name="pooling")(encoder.outputs[0], token_ids)
    probs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="classifier",
                               kernel_initializer=head_initializer(info, seed))(vector)
    return keras.Model(encoder.inputs, probs, name=f"{encoder.name}_classifier")
