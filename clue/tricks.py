"""Leaderboard tricks (issue 16), each a flag of every task script and one line in a script of your own.

    --ema 0.999            optimizer = AdamW(lr, **tricks.optimizer_options(model, ema=0.999))
                           callbacks = tricks.scored_with_average([best_on_dev])
    --layer-lr-decay 0.9   optimizer = AdaFactor(lr, **tricks.optimizer_options(model, layer_lr_decay=0.9))
    --rdrop 1.0            train, loss = tricks.rdrop(train, "sparse_categorical_crossentropy", alpha=1.0)
    --fgm 1.0              model = tricks.fgm(model, epsilon=1.0)
    --eval-every 100       best_on_dev = training.BestOnDev(evaluate, metric, weights, state, every=100)

``training.fit`` does all five from the flags (--eval-every: dev also scored within epochs, see
``clue.training.BestOnDev``). EMA is Keras's own (``use_ema``: the optimizer keeps the
average as optimizer variables, so the backup holds it and a resume is exact); ``clue.optimizers`` moves it
only at applied updates. Dev is scored and the best weights saved with the averaged weights, which the
test predictions then load; training goes on from the raw ones.
"""

import re

import keras
import numpy as np
from keras import ops

from clue import batching
from clue.layers import replicas_in_sync
from clue.optimizers import dense_gradient

LAYER = re.compile(r"^Transformer-(\d+)-")


def layer_lr_multipliers(model, rate):
    """{variable path: learning-rate factor} for layer-wise decay: the top encoder layer 1, each layer
    below it ``rate`` times the one above, the embeddings (``Embedding-*``) ``rate`` times the lowest
    layer; everything else (the task head) 1. Layers are read from bert4keras's names
    (``Transformer-<i>-...``, see ``clue.models``)."""
    layers = {v.path: int(m.group(1)) for v in model.trainable_variables if (m := LAYER.match(v.path))}
    if not layers:
        raise ValueError(f"{model.name}: no Transformer-<i>- variables to decay the learning rate of")
    top = max(layers.values())
    factors = {}
    for variable in model.trainable_variables:
        if variable.path in layers:
            factors[variable.path] = rate ** (top - layers[variable.path])
        elif variable.path.startswith("Embedding-"):
            factors[variable.path] = rate ** (top + 1)
    return factors


def optimizer_options(model, ema=None, layer_lr_decay=None):
    """Keyword arguments for ``clue.optimizers.AdaFactor`` / ``AdamW``: the weight average (``ema``, its
    decay per applied update) and layer-wise learning-rate decay (``layer_lr_decay``, see
    ``layer_lr_multipliers``); {} when neither is asked for."""
    options = {}
    if ema:
        options.update(use_ema=True, ema_momentum=float(ema))
    if layer_lr_decay is not None and layer_lr_decay != 1:
        options["lr_multipliers"] = layer_lr_multipliers(model, float(layer_lr_decay))
    return options


class SwapAveragedWeights(keras.callbacks.Callback):
    """At each epoch's end, swaps the model's trainable weights with the optimizer's averages; one before
    and one after the callbacks that are to see the averaged weights (``scored_with_average``). Also after
    a training batch where one of ``inner`` (those callbacks) says ``scores_after_batch(batch)``
    (``clue.training.BestOnDev`` with --eval-every).

    Not ``keras.callbacks.SwapEMAWeights``: on TensorFlow it swaps by addition and subtraction
    (a + b - b), which rounds, so the raw weights training goes on from would change at every swap; this
    swap copies, so training with --ema follows the run without it bit for bit."""

    def __init__(self, inner=()):
        super().__init__()
        self.inner = list(inner)

    def on_train_batch_end(self, batch, logs=None):
        if any(getattr(c, "scores_after_batch", lambda b: False)(batch) for c in self.inner):
            self.swap()

    def on_epoch_end(self, epoch, logs=None):
        self.swap()

    def swap(self):
        optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)   # mixed_float16
        for variable, average in zip(optimizer._trainable_variables, optimizer._model_variables_moving_average):
            if average is not None:
                raw = ops.convert_to_numpy(variable)
                variable.assign(average)
                average.assign(raw)


def scored_with_average(callbacks, ema=True):
    """``callbacks`` between two ``SwapAveragedWeights``: their ``on_epoch_end`` (dev score, best
    weights) sees the averaged weights, and the callbacks after them (the backup) the raw ones again, so
    that a resumed run trains on from where the uninterrupted one was. ``callbacks`` alone without ``ema``."""
    return [SwapAveragedWeights(callbacks), *callbacks, SwapAveragedWeights(callbacks)] if ema else list(callbacks)


class TwiceEach(batching.BatchesOf):
    """The batches with every example twice in a row (a, a, b, b, ...): one forward pass then gives each
    example two dropout masks."""

    def change(self, batch):
        return keras.tree.map_structure(lambda a: np.repeat(a, 2, axis=0), batch)


def symmetric_kl(p, q, epsilon=1e-12):
    """(KL(p || q) + KL(q || p)) / 2 over the last axis; probability 0 on both sides (a padding choice)
    adds 0."""
    log_p, log_q = ops.log(ops.maximum(p, epsilon)), ops.log(ops.maximum(q, epsilon))
    return 0.5 * ops.sum((p - q) * (log_p - log_q), axis=-1)


class RDropLoss(keras.losses.Loss):
    """R-Drop on batches from ``TwiceEach``: per example, the task loss plus ``alpha`` x the symmetric KL
    (``symmetric_kl``) between the two outputs of its pair; Keras's mean then gives mean task loss over both
    passes + alpha x mean KL. ``loss`` is what ``compile`` takes (a name or a function of y_true, y_pred
    giving one loss per example); y_pred is a probability distribution per example (softmax)."""

    def __init__(self, loss, alpha, name="rdrop"):
        super().__init__(name=name)
        self.task_loss, self.alpha = keras.losses.get(loss), float(alpha)

    def call(self, y_true, y_pred):
        per_example = self.task_loss(y_true, y_pred)
        probs = ops.cast(y_pred, "float32")
        pairs = ops.reshape(probs, (-1, 2, ops.shape(probs)[-1]))
        divergence = symmetric_kl(pairs[:, 0], pairs[:, 1])
        return ops.cast(per_example, "float32") + self.alpha * ops.repeat(divergence, 2, axis=0)


def rdrop(batches, loss, alpha):
    """(training batches, loss) for R-Drop: each example twice per batch, and ``RDropLoss``."""
    return TwiceEach(batches), RDropLoss(loss, alpha)


TOKEN_EMBEDDING = "Embedding-Token/embeddings"


class AdversarialModel(keras.Model):
    """FGM adversarial training (bojone's keras_adversarial_training, blog 7234): per batch, the token
    embedding matrix E is moved by r = epsilon x g / (||g|| + 1e-8), g the loss gradient on E; the usual
    step is taken at E + r (its gradients, its loss in the logs), and r is taken back off. Built from a
    functional model's inputs and outputs (``fgm``): the layers, variables and weights file are the
    model's own. TensorFlow, JAX and PyTorch (each backend's train step is overridden)."""

    def __init__(self, *args, epsilon=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.epsilon = float(epsilon)
        paths = [v.path for v in self.trainable_variables]
        if TOKEN_EMBEDDING not in paths:
            raise ValueError(f"{self.name}: no {TOKEN_EMBEDDING} variable to perturb")
        self.embedding_index = paths.index(TOKEN_EMBEDDING)

    def perturbation(self, gradient):
        gradient = ops.convert_to_tensor(dense_gradient(gradient))
        return self.epsilon * gradient / (ops.sqrt(ops.sum(ops.square(gradient))) + 1e-8)

    if keras.backend.backend() == "tensorflow":
        def train_step(self, data):
            import tensorflow as tf

            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            embedding = self.trainable_variables[self.embedding_index]
            with tf.GradientTape() as tape:
                loss = self.compute_loss(x=x, y=y, y_pred=self(x, training=True), sample_weight=sample_weight,
                                         training=True)
            gradient = dense_gradient(tape.gradient(loss, embedding))
            if replicas_in_sync() > 1:   # the global batch's direction
                gradient = tf.distribute.get_replica_context().all_reduce("sum", gradient)
            delta = self.perturbation(gradient)
            embedding.assign_add(delta)
            logs = super().train_step(data)
            embedding.assign_sub(delta)
            return logs

    elif keras.backend.backend() == "torch":
        def train_step(self, data):
            import torch

            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            embedding = self.trainable_variables[self.embedding_index]
            loss = self.compute_loss(x=x, y=y, y_pred=self(x, training=True), sample_weight=sample_weight,
                                     training=True)
            (gradient,) = torch.autograd.grad(loss, embedding.value)
            with torch.no_grad():
                delta = self.perturbation(gradient)
                embedding.assign_add(delta)
            logs = super().train_step(data)
            with torch.no_grad():
                embedding.assign_sub(delta)
            return logs

    elif keras.backend.backend() == "jax":
        def train_step(self, state, data):
            import jax

            trainable, non_trainable, optimizer_variables, metrics_variables = state
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            index = self.embedding_index

            def embedding_loss(value):
                values = [value if i == index else v for i, v in enumerate(trainable)]
                y_pred, updated = self.stateless_call(values, non_trainable, x, training=True)
                return self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                         training=True), updated

            gradient, non_trainable = jax.grad(embedding_loss, has_aux=True)(trainable[index])
            delta = self.perturbation(gradient)
            moved = [v + delta if i == index else v for i, v in enumerate(trainable)]
            logs, state = super().train_step((moved, non_trainable, optimizer_variables, metrics_variables), data)
            trainable = [v - delta if i == index else v for i, v in enumerate(state[0])]
            return logs, (trainable, *state[1:])


def fgm(model, epsilon):
    """``model`` (functional, with bert4keras's ``Embedding-Token``) trained with FGM at ``epsilon``
    (``AdversarialModel``): the same layers and variables, so ``model`` itself holds what it learns."""
    if keras.backend.backend() not in ("tensorflow", "jax", "torch"):
        raise ValueError(f"--fgm runs on TensorFlow, JAX and PyTorch, not {keras.backend.backend()}")
    return AdversarialModel(model.inputs, model.outputs, name=model.name, epsilon=epsilon)
