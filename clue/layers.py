"""Encoder building blocks in ``keras.ops`` only, so TensorFlow, JAX and PyTorch all run them.

The numerics follow bert4keras 0.11.5 (the reference the tests compare against): its layer norm formula,
erf gelu, padding mask and rotary layout. Norms and softmax run in float32 under mixed precision.
"""

import math

import keras
from keras import ops

register = keras.saving.register_keras_serializable(package="clue")


def kernel_initializer(initializer_range=0.02, seed=None):
    """A fresh truncated-normal initializer. Make one per kernel: one object reused repeats its values
    (that is how bert4keras ends up with identical Q/K/V kernels at random init)."""
    return keras.initializers.TruncatedNormal(stddev=initializer_range, seed=seed)


@register
class RoFormerV2Initializer(keras.initializers.Initializer):
    """RoFormerV2's own kernel init (bert4keras ``RoFormerV2.initializer``): a truncated normal of standard
    deviation 1.13684723 / sqrt(fan_in) / sqrt(num_layers), where 1.13684723 undoes the truncation at two
    deviations and fan_in is the kernel's first dimension, or its second when the first is under 10 or over
    10,000."""

    def __init__(self, num_layers, seed=None):
        self.num_layers, self.seed = num_layers, seed

    def __call__(self, shape, dtype=None):
        fan_in = shape[1] if shape[0] > 10000 or shape[0] < 10 else shape[0]
        stddev = 1.13684723 / fan_in ** 0.5 / self.num_layers ** 0.5
        return keras.initializers.TruncatedNormal(stddev=stddev, seed=self.seed)(shape, dtype)

    def get_config(self):
        return {"num_layers": self.num_layers, "seed": self.seed}


def head_initializer(config, seed=None):
    """A fresh kernel initializer for a task head, the encoder's own as bert4keras's ``base.initializer``:
    truncated normal of std initializer_range for BERT and RoFormer, ``RoFormerV2Initializer`` for
    RoFormerV2. ``config`` is the encoder's ``clue.models.EncoderConfig`` (``encoder.config``)."""
    if config.family == "roformer_v2":
        return RoFormerV2Initializer(config.num_layers, seed)
    return kernel_initializer(config.initializer_range, seed)


def reseeded(initializer, k):
    """A copy of ``initializer`` with its seed (when it has one) moved by ``k``, for a second kernel."""
    config = initializer.get_config()
    if config.get("seed") is not None:
        config["seed"] += k
    return initializer.__class__.from_config(config)


def _seed(seed, k):
    """The k-th seed of a layer seeded with ``seed`` (None stays None: a fresh random seed per kernel)."""
    return None if seed is None else seed + k


@ops.custom_gradient
def gelu_erf_written_out(x):
    """Exact gelu written as bert4keras writes it (tf.nn.gelu's erfc form rounds differently).

    Its gradient is written out, so that backpropagation keeps only ``x``: left to autodiff, each layer
    would keep three more (batch, length, intermediate) tensors alive until the backward pass."""

    def grad(*args, upstream=None):
        upstream = args[0] if upstream is None else upstream   # the backends call it differently
        cdf = 0.5 * (1.0 + ops.erf(x / math.sqrt(2.0)))
        pdf = ops.exp(-0.5 * ops.square(x)) / math.sqrt(2.0 * math.pi)
        return upstream * (cdf + x * pdf)

    return 0.5 * x * (1.0 + ops.erf(x / math.sqrt(2.0))), grad


@register
def gelu_erf(x):
    """Exact (erf) gelu. PyTorch has it as one fused kernel each way that keeps only ``x``, equal to the
    written-out form to round-off (tests/test_torch_backend.py); the other backends run the written-out one."""
    if keras.backend.backend() == "torch":
        return ops.gelu(x, approximate=False)
    return gelu_erf_written_out(x)


@register
def gelu_tanh(x):
    return keras.activations.gelu(x, approximate=True)


ACTIVATIONS = {  # config "hidden_act" -> activation; bert4keras's "gelu" is the erf form
    "gelu": gelu_erf, "gelu_erf": gelu_erf, "relu": "relu", "tanh": "tanh", "swish": "silu", "silu": "silu",
    "gelu_tanh": gelu_tanh, "gelu_new": gelu_tanh, "gelu_pytorch_tanh": gelu_tanh,
}


def activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"hidden_act {name!r} is not supported; use one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


# ---------------------------------------------------------------------------------------------------------
# Rotary position embedding (RoFormer): pairs (2i, 2i+1) rotate by position * 10000^(-2i/dim).


def sinusoidal_positions(length, dim, base=10000.0):
    """cos and sin tables of shape (length, dim), each angle repeated for its pair (2i, 2i+1)."""
    inv_freq = ops.power(base, -2.0 * ops.arange(dim // 2, dtype="float32") / dim)
    angles = ops.arange(length, dtype="float32")[:, None] * inv_freq[None, :]
    angles = ops.repeat(angles, 2, axis=-1)
    return ops.cos(angles), ops.sin(angles)


def apply_rotary(x, cos, sin):
    """Rotate x (batch, length, ..., dim) by position; cos/sin from ``sinusoidal_positions``."""
    shape = ops.shape(x)
    expand = (1,) * (len(shape) - 3)   # broadcast over the axes between length and dim (heads)
    cos = ops.reshape(ops.cast(cos, x.dtype), (1, shape[1], *expand, shape[-1]))
    sin = ops.reshape(ops.cast(sin, x.dtype), (1, shape[1], *expand, shape[-1]))
    rotated = ops.reshape(ops.stack([-x[..., 1::2], x[..., 0::2]], axis=-1), shape)
    return x * cos + rotated * sin


# ---------------------------------------------------------------------------------------------------------
# Embeddings


@register
class TokenEmbedding(keras.layers.Layer):
    """Token embeddings; ``reverse=True`` multiplies by the transposed table (the tied MLM output)."""

    def __init__(self, vocab_size, hidden_size, initializer_range=0.02, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        self.initializer_range, self.seed = initializer_range, seed

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            name="embeddings", shape=(self.vocab_size, self.hidden_size),
            initializer=kernel_initializer(self.initializer_range, self.seed))

    def call(self, inputs, reverse=False):
        if reverse:   # matmul by the transpose, as bert4keras (XLA folds the transpose into the matmul)
            return ops.matmul(inputs, ops.transpose(ops.cast(self.embeddings, inputs.dtype)))
        return ops.cast(ops.take(self.embeddings, ops.cast(inputs, "int32"), axis=0), self.compute_dtype)

    def compute_output_spec(self, inputs, reverse=False):
        if reverse:
            return keras.KerasTensor((*inputs.shape[:-1], self.vocab_size), inputs.dtype)
        return keras.KerasTensor((*inputs.shape, self.hidden_size), self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
                "initializer_range": self.initializer_range, "seed": self.seed}


@register
class PositionEmbedding(keras.layers.Layer):
    """Learned absolute positions (BERT), added to the input."""

    def __init__(self, max_position, initializer_range=0.02, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.max_position, self.initializer_range, self.seed = max_position, initializer_range, seed

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            name="embeddings", shape=(self.max_position, input_shape[-1]),
            initializer=kernel_initializer(self.initializer_range, self.seed))

    def call(self, x):
        length = ops.shape(x)[1]
        return x + ops.cast(self.embeddings[None, :length], x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "max_position": self.max_position,
                "initializer_range": self.initializer_range, "seed": self.seed}


@register
class PaddingMask(keras.layers.Layer):
    """token_ids -> bool (batch, 1, 1, length): which keys attention may read. Padding id 0 is masked,
    except position 0, as bert4keras does (so a row of padding alone stays finite)."""

    def call(self, token_ids):
        mask = ops.not_equal(token_ids, 0)
        first = ops.arange(ops.shape(token_ids)[1]) == 0
        return ops.logical_or(mask, first[None, :])[:, None, None, :]

    def compute_output_spec(self, token_ids):
        return keras.KerasTensor((token_ids.shape[0], 1, 1, token_ids.shape[1]), "bool")

    def get_config(self):
        return super().get_config()


# ---------------------------------------------------------------------------------------------------------
# Dense, norm, attention, feed-forward


@register
class TokenDense(keras.layers.Dense):
    """``keras.layers.Dense`` on (batch, length, ..., features), run as one 2-D matmul over all tokens.
    TensorFlow's and PyTorch's matmuls fold the leading axes so already; JAX's does not, and XLA on CPU
    then takes the kernel's gradient (two contracting axes) through transposed copies and its slow generic
    dot: BERT-base's JAX train step at 128 x 8 went from 5.5 to 4.8 s with the fold (benchmark.md)."""

    def call(self, inputs, training=None):
        shape = ops.shape(inputs)
        if len(shape) <= 2:
            return super().call(inputs, training=training)
        flat = super().call(ops.reshape(inputs, (-1, shape[-1])), training=training)
        return ops.reshape(flat, (*shape[:-1], self.units))


@register
class LayerNorm(keras.layers.Layer):
    """bert4keras's layer norm: (x - mean) / sqrt(var + eps) * gamma + beta, computed in float32.
    ``zero_mean=False, scale=False, center=False`` is RoFormerV2's weightless RMS norm."""

    def __init__(self, epsilon=1e-12, zero_mean=True, scale=True, center=True, **kwargs):
        super().__init__(**kwargs)
        self.epsilon, self.zero_mean, self.scale, self.center = epsilon, zero_mean, scale, center

    def build(self, input_shape):
        dim = (input_shape[-1],)
        self.gamma = self.add_weight(name="gamma", shape=dim, initializer="ones", autocast=False) \
            if self.scale else None
        self.beta = self.add_weight(name="beta", shape=dim, initializer="zeros", autocast=False) \
            if self.center else None

    def call(self, x):
        x = ops.cast(x, "float32")
        # PyTorch's fused kernels keep only x, the mean and 1/std for the backward pass
        x = self.fused(x) if keras.backend.backend() == "torch" else self.written_out(x)
        return ops.cast(x, self.compute_dtype)

    def written_out(self, x):
        x = self.normalize(x)
        if self.gamma is not None:
            x = x * self.gamma
        return x if self.beta is None else x + self.beta

    def fused(self, x):
        if self.zero_mean:
            return ops.layer_normalization(x, self.gamma, self.beta, epsilon=self.epsilon)
        x = ops.rms_normalization(x, self.gamma, epsilon=self.epsilon)
        return x if self.beta is None else x + self.beta

    def normalize(self, x):
        """(x - mean) / sqrt(var + eps) with its gradient written out: backpropagation keeps the result
        and the (batch, length, 1) std instead of four full-size intermediates (less memory, fewer ops)."""

        @ops.custom_gradient
        def normalize(x):
            centered = x - ops.mean(x, axis=-1, keepdims=True) if self.zero_mean else x
            std = ops.sqrt(ops.mean(ops.square(centered), axis=-1, keepdims=True) + self.epsilon)
            normalized = centered / std

            def grad(*args, upstream=None):
                upstream = args[0] if upstream is None else upstream
                g = upstream - ops.mean(upstream, axis=-1, keepdims=True) if self.zero_mean else upstream
                return (g - normalized * ops.mean(upstream * normalized, axis=-1, keepdims=True)) / std

            return normalized, grad

        return normalize(x)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "zero_mean": self.zero_mean,
                "scale": self.scale, "center": self.center}


@register
class Dropout(keras.layers.Dropout):
    """``keras.layers.Dropout``, with cheaper or replica-aware masks where a backend needs them:
    - PyTorch: one random draw, a scale, and a select by the boolean mask, which is all backward keeps (a
      quarter of a float mask's memory: 140-360 MB less peak at BERT-base 512 x 2, measured; multiplying by
      the bool mask instead made a float copy of it each way). Keras's seeded PyTorch dropout
      makes a probability tensor, a mask, x / keep, zeros and a select, and a select again backwards: at
      512 x 2 that was 1.9 s of BERT-base's train step, on attention's dropout.
    - JAX: the mask from ``hashed_keep`` instead of threefry's random bits, which cost 0.8 s of a 4.5 s
      BERT-base step at 128 x 8 on this CPU (benchmark.md); like threefry it is one mask for the global batch
      whatever its sharding, so N devices still train as one does.
    - TensorFlow under a strategy of N replicas: each replica draws its own rows of the mask one device would
      draw for the whole batch (``replica_slice_dropout``), so N devices train as one does."""

    def call(self, inputs, training=False):
        if not training or self.rate == 0 or self.noise_shape is not None:
            return super().call(inputs, training=training)
        backend = keras.backend.backend()
        if backend == "jax":
            keep = hashed_keep(ops.shape(inputs), self.rate, self.seed_generator.next())
            return ops.where(keep, inputs / ops.cast(1.0 - self.rate, inputs.dtype), ops.zeros((), inputs.dtype))
        if backend == "tensorflow" and replicas_in_sync() > 1:
            return replica_slice_dropout(inputs, self.rate, self.seed_generator.next())
        if backend != "torch":
            return super().call(inputs, training=training)
        keep = 1.0 - self.rate
        kept = keras.random.uniform(ops.shape(inputs), seed=self.seed_generator) < keep
        return ops.where(kept, inputs * ops.cast(1.0 / keep, inputs.dtype), ops.zeros((), inputs.dtype))


def _mix32(x):
    """lowbias32 (C. Wellons' hash prospector): a bijection of uint32 in which every input bit flips each
    output bit with probability close to 1/2; products wrap modulo 2^32."""
    x = ops.bitwise_xor(x, ops.right_shift(x, 16))
    x = ops.multiply(x, ops.convert_to_tensor(0x7FEB352D, "uint32"))
    x = ops.bitwise_xor(x, ops.right_shift(x, 15))
    x = ops.multiply(x, ops.convert_to_tensor(0x846CA68B, "uint32"))
    return ops.bitwise_xor(x, ops.right_shift(x, 16))


def hashed_keep(shape, rate, seed):
    """A dropout keep mask of ``shape`` (each True with probability 1 - rate, to 2^-32): element i (row-major)
    keeps when mix(mix(i) ^ key) >= rate x 2^32, key = mix(seed[0] ^ mix(seed[1])), ``seed`` being two
    uint32 words (a Keras SeedGenerator draw). Each element's bit is a function of its index alone, so the
    mask is the same however the tensor is sharded, and a batch padded with more rows keeps the first rows'
    mask. Ten integer ops per element where threefry-2x32 takes twenty rounds of them."""
    seed = ops.cast(seed, "uint32")
    key = _mix32(ops.bitwise_xor(seed[0], _mix32(seed[1])))
    count = math.prod(shape)
    if count >= 2**32:
        raise ValueError(f"dropout of {count} elements: the mask's element index must fit 32 bits")
    index = ops.reshape(ops.arange(count, dtype="uint32"), shape)
    threshold = ops.convert_to_tensor(min(round(rate * 2**32), 2**32 - 1), "uint32")
    return ops.greater_equal(_mix32(ops.bitwise_xor(_mix32(index), key)), threshold)


def replicas_in_sync():
    """TensorFlow: how many replicas the code runs on now (1 outside a strategy's replica function)."""
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    return 1 if context is None else context.num_replicas_in_sync


def replica_slice_dropout(inputs, rate, seed):
    """TensorFlow, in a replica of a strategy: dropout of this replica's rows (an even split of the global
    batch) with the part of the mask ``tf.nn.experimental.stateless_dropout`` draws for the whole batch at
    ``seed``. Its uniforms are Philox's stream in row-major order, one 32-bit draw per element and four per
    counter step, so replica r starts r x (its element count) draws in. Philox is what TensorFlow picks on
    CPU and GPU (not on TPU, where the masks are then valid but not one device's)."""
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if seed.dtype != tf.int32:   # as Keras casts SeedGenerator's int64 state for stateless ops
        seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
    key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=seed)
    count = tf.size(inputs, out_type=tf.int64)
    start = tf.cast(context.replica_id_in_sync_group, tf.int64) * count
    skip = start % 4
    counter += tf.cast(tf.stack([start // 4, 0]), tf.uint64)
    uniform = tf.raw_ops.StatelessRandomUniformV2(shape=tf.reshape(count + skip, [1]), key=key, counter=counter,
                                                  alg=tf.raw_ops.StatelessRandomGetAlg(), dtype=inputs.dtype)
    kept = tf.reshape(uniform[skip:], tf.shape(inputs)) >= rate
    return tf.where(kept, inputs * tf.cast(1 / (1 - rate), inputs.dtype), tf.zeros([], inputs.dtype))


@register
class SelfAttention(keras.layers.Layer):
    """Multi-head self-attention on (batch, length, heads, head_size) tensors, no transposes of our own.
    ``rotary`` adds RoFormer's rotary positions to queries and keys (before attention, so fused attention
    still applies). ``fused``: None (default) uses ``keras.ops.dot_product_attention`` whenever attention
    dropout is inactive (SDPA on PyTorch, cuDNN flash on a GPU with JAX and half precision; on CPU, TensorFlow
    and JAX run it as the same einsum-softmax-einsum, equally fast); False always spells
    softmax(q k^T / sqrt(d) + mask) v out, as the training path with attention dropout must."""

    def __init__(self, num_heads, head_size, use_bias=True, rotary=False, dropout=0.0,
                 initializer_range=0.02, seed=None, fused=None, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.head_size, self.use_bias, self.rotary = num_heads, head_size, use_bias, rotary
        self.dropout, self.initializer_range, self.seed, self.fused = dropout, initializer_range, seed, fused
        width = num_heads * head_size

        def dense(name, k):
            return TokenDense(width, use_bias=use_bias, name=name, dtype=self.dtype_policy,
                              kernel_initializer=kernel_initializer(initializer_range, _seed(seed, k)))

        self.query, self.key, self.value = dense("query", 0), dense("key", 1), dense("value", 2)
        self.output_dense = dense("output", 3)
        self.dropout_layer = Dropout(dropout, seed=_seed(seed, 4), dtype=self.dtype_policy)

    def build(self, x_shape, padding_mask_shape=None):
        for layer in (self.query, self.key, self.value):
            layer.build(x_shape)
        self.output_dense.build((*x_shape[:-1], self.num_heads * self.head_size))

    def call(self, x, padding_mask, training=None):
        heads = (*ops.shape(x)[:-1], self.num_heads, self.head_size)
        q = ops.reshape(self.query(x), heads)
        k = ops.reshape(self.key(x), heads)
        v = ops.reshape(self.value(x), heads)
        if self.rotary:
            cos, sin = sinusoidal_positions(heads[1], self.head_size)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        dropout_active = bool(training) and self.dropout > 0   # dot_product_attention has no dropout
        if self.fused is not False and not dropout_active:
            out = ops.dot_product_attention(q, k, v, mask=padding_mask)
        else:
            out = self.explicit_attention(q, k, v, padding_mask, training)
        return self.output_dense(ops.reshape(out, (*heads[:-2], self.num_heads * self.head_size)))

    def explicit_attention(self, q, k, v, padding_mask, training):
        """softmax(q k^T / sqrt(d), masked) v with dropout on the probabilities; softmax in float32. q is
        scaled rather than the (length x length) scores, and the mask is added as a (batch, 1, 1, length)
        bias rather than selected over the scores: two fewer passes over the largest tensor, each way (the
        same floats when sqrt(d) is a power of 2, as at head size 64)."""
        scores = ops.einsum("btnh,bsnh->bnts", q / self.head_size ** 0.5, k)
        scores = ops.cast(scores, "float32") + ops.where(padding_mask, 0.0, -1e30)
        probs = self.dropout_layer(ops.softmax(scores, axis=-1), training=training)
        return ops.einsum("bnts,bsnh->btnh", ops.cast(probs, v.dtype), v)

    def compute_output_shape(self, x_shape, padding_mask_shape=None):
        return x_shape

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "head_size": self.head_size,
                "use_bias": self.use_bias, "rotary": self.rotary, "dropout": self.dropout,
                "initializer_range": self.initializer_range, "seed": self.seed, "fused": self.fused}


@register
class FeedForward(keras.layers.Layer):
    """Dense(intermediate, activation) -> Dense(hidden)."""

    def __init__(self, intermediate_size, activation="gelu", use_bias=True, initializer_range=0.02,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self.intermediate_size, self.activation, self.use_bias = intermediate_size, activation, use_bias
        self.initializer_range, self.seed = initializer_range, seed
        self.intermediate = TokenDense(
            intermediate_size, activation=activation, use_bias=use_bias, name="intermediate",
            dtype=self.dtype_policy, kernel_initializer=kernel_initializer(initializer_range, _seed(seed, 0)))
        self.output_dense = None   # its width is the input's, known at build

    def build(self, input_shape):
        self.intermediate.build(input_shape)
        self.output_dense = TokenDense(
            input_shape[-1], use_bias=self.use_bias, name="output", dtype=self.dtype_policy,
            kernel_initializer=kernel_initializer(self.initializer_range, _seed(self.seed, 1)))
        self.output_dense.build((*input_shape[:-1], self.intermediate_size))

    def call(self, x):
        return self.output_dense(self.intermediate(x))

    def get_config(self):
        return {**super().get_config(), "intermediate_size": self.intermediate_size,
                "activation": keras.activations.serialize(keras.activations.get(self.activation)),
                "use_bias": self.use_bias, "initializer_range": self.initializer_range, "seed": self.seed}


@register
class Bias(keras.layers.Layer):
    """Adds a learned bias over the last axis (bert4keras's MLM-Bias)."""

    def build(self, input_shape):
        self.bias = self.add_weight(name="bias", shape=(input_shape[-1],), initializer="zeros")

    def call(self, x):
        return x + ops.cast(self.bias, x.dtype)

    def get_config(self):   # defined, so Keras serialises the dtype policy it was given
        return super().get_config()
