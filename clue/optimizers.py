"""The optimizers the task scripts train with: bert4keras's AdaFactor (the baselines'), and AdamW.

    AdaFactor(learning_rate=5e-4, grad_accum_steps=2)   # CLUE-bert4keras's optimizer2 (AdaFactorG)

``AdaFactor`` is bert4keras 0.11.5's AdaFactor as the CLUE-bert4keras scripts configure it
(``AdaFactor(learning_rate=5e-4, beta1=0.9, min_dim_size_to_factor=10**6)``), with ``grad_accum_steps=N``
its ``extend_with_gradient_accumulation``. Keras 3's own Adafactor is another algorithm (no momentum,
every matrix factored, another step count under accumulation), hence our own; it is written in
``keras.ops`` only, so it runs on TensorFlow, JAX and PyTorch. tests/test_optimizers.py trains the same
model with bert4keras's and ours and compares the weights.

Both optimizers here add up TensorFlow's sparse embedding gradients (one ``tf.IndexedSlices`` row per token
looked up) before using them: Keras's optimizers square those rows one by one, so a token that occurs
twice in a batch gets g1^2 + g2^2 in its second moment instead of (g1 + g2)^2.
"""

import keras
import numpy as np
from keras import ops


def dense_gradient(gradient):
    """``gradient`` as a dense tensor: rows of a TensorFlow IndexedSlices at the same index summed."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if isinstance(gradient, tf.IndexedSlices):
            return tf.convert_to_tensor(gradient)
    return gradient


class DenseGradients:
    """Mixin for a Keras optimizer: gradients go in dense (``dense_gradient``), on every backend's path. On
    PyTorch the weights' ``.grad`` is released after the update: Keras's trainer clears it only after the
    next forward pass, which kept a model's worth of gradients alive through it (and fragmented the heap)."""

    def apply(self, grads, trainable_variables=None):
        result = super().apply([dense_gradient(g) for g in grads], trainable_variables)
        if keras.backend.backend() == "torch":
            for variable in trainable_variables or self._trainable_variables:
                variable.value.grad = None
        return result


class LayerRatesAndAveraging:
    """Mixin for a Keras optimizer: per-variable learning-rate multipliers, and Keras's weight average
    (``use_ema``) moved only on the batches whose update is applied.

    ``lr_multipliers`` ({variable path: factor}, the rest 1; ``clue.tricks.layer_lr_multipliers``) scales
    each variable's step, decoupled weight decay included (as PyTorch's parameter groups): factor 1 leaves
    the step untouched, bit for bit. Keras updates the average at every batch, also at the batches where
    gradient accumulation only adds up; here it moves only where the weights do (``update_applied``), so
    DECAY is per applied update whatever ``grad_accum``.
    """

    def __init__(self, *args, lr_multipliers=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lr_multipliers = {str(k): float(v) for k, v in (lr_multipliers or {}).items()}

    def build(self, var_list):
        if not self.built:
            self._lr_factors = [self.lr_multipliers.get(v.path, 1.0) for v in var_list]
        super().build(var_list)

    def layer_rate(self, learning_rate, variable):
        """``learning_rate`` times ``variable``'s multiplier (unchanged where it is 1)."""
        factor = self._lr_factors[self._get_variable_index(variable)]
        return learning_rate if factor == 1.0 else ops.multiply(learning_rate, factor)

    def update_applied(self):
        """A boolean tensor: this batch's update moves the weights; None when every batch's does."""
        return None

    def _update_model_variables_moving_average(self, trainable_variables):
        applied = self.update_applied()
        if applied is None:
            return super()._update_model_variables_moving_average(trainable_variables)
        # Keras's update (the first applied update starts the average at the weights), where applied
        momentum = ops.multiply(ops.cast(ops.not_equal(self.iterations, 0), "float32"), self.ema_momentum)
        for variable, average in zip(trainable_variables, self._model_variables_moving_average):
            if average is not None:
                rate = ops.cast(momentum, variable.dtype)
                moved = ops.add(ops.multiply(rate, average), ops.multiply(ops.subtract(1, rate), variable))
                average.assign(ops.where(applied, moved, ops.convert_to_tensor(average)))

    def get_config(self):
        return {**super().get_config(), "lr_multipliers": self.lr_multipliers}


@keras.saving.register_keras_serializable(package="clue")
class AdamW(DenseGradients, LayerRatesAndAveraging, keras.optimizers.AdamW):
    """Keras's AdamW, given dense gradients (see the module's docstring), with per-variable learning-rate
    multipliers and the average moved at applied updates only (``LayerRatesAndAveraging``); on PyTorch its
    update runs in place (``update_in_place``)."""

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = self.layer_rate(learning_rate, variable)
        if keras.backend.backend() == "torch" and not self.amsgrad:
            return self.update_in_place(gradient, variable, learning_rate)
        super().update_step(gradient, variable, learning_rate)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        self._step_sizes = {}   # update_in_place's alpha per (rate multiplier, dtype), for this update only
        super()._backend_update_step(grads, trainable_variables, learning_rate)

    def update_in_place(self, gradient, variable, learning_rate):
        """Keras's Adam update with the same roundings (so the same floats), in eight passes over the weight
        where Keras's takes twelve, nine of them into new tensors. ``a.addcmul_(b, one, value=c)`` is
        a + (c b) 1, that is Keras's a + c b (a 0-d tensor ``c`` in place of ``one`` would round c b + a once,
        as a fused multiply-add: tests/torch_paths.py sees that); ``w.addcdiv_(m, d, value=-alpha)`` is
        w - (alpha m) / d. One buffer is allocated; the gradient is the other when it is the weight's own
        ``.grad``, which ``DenseGradients`` drops after the update anyway."""
        import torch

        with torch.no_grad():
            index = self._get_variable_index(variable)
            key = (self._lr_factors[index], variable.dtype)
            alpha = self._step_sizes.get(key)
            if alpha is None:   # Keras's scalars, once per update and rate: per variable they took 27 ms a step
                lr = ops.cast(learning_rate, variable.dtype)
                step = ops.cast(self.iterations + 1, variable.dtype)
                beta_1_power = ops.power(ops.cast(self.beta_1, variable.dtype), step)
                beta_2_power = ops.power(ops.cast(self.beta_2, variable.dtype), step)
                alpha = self._step_sizes[key] = float(lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power))
            m, v, w = self._momentums[index].value, self._velocities[index].value, variable.value
            g = ops.cast(gradient, variable.dtype)
            one = torch.ones((), dtype=w.dtype, device=w.device)
            scratch = torch.square(g)
            v.addcmul_(scratch.sub_(v), one, value=1 - self.beta_2)
            if g is not w.grad:   # someone else's tensor: not ours to overwrite
                g = g.clone()
            m.addcmul_(g.sub_(m), one, value=1 - self.beta_1)
            torch.sqrt(v, out=scratch).add_(self.epsilon)
            w.addcdiv_(m, scratch, value=-alpha)

    def _apply_weight_decay(self, variables):
        factors = [self._lr_factors[self._get_variable_index(v)] for v in variables]
        scaled = [v for v, factor in zip(variables, factors) if factor != 1.0]
        super()._apply_weight_decay([v for v, factor in zip(variables, factors) if factor == 1.0])
        if self.weight_decay is None:
            return
        for variable in scaled:   # Keras's decay step, at the variable's own rate
            if self._use_weight_decay(variable):
                rate = ops.cast(self.layer_rate(self.learning_rate, variable), variable.dtype)
                decay = ops.cast(self.weight_decay, variable.dtype)
                variable.assign(variable - variable * decay * rate)

    def update_applied(self):   # Keras's accumulation applies at every N-th batch
        steps = self.gradient_accumulation_steps
        return ops.equal(ops.mod(self._iterations + 1, steps), 0) if steps else None


@keras.saving.register_keras_serializable(package="clue")
class AdaFactor(DenseGradients, LayerRatesAndAveraging, keras.optimizers.Optimizer):
    """bert4keras 0.11.5's AdaFactor; defaults as the CLUE-bert4keras scripts set it.

    Per weight w with gradient g, at step t (batches seen, this one included):
        v = beta2 v + (1 - beta2) (g^2 + epsilon1),   beta2 = 1 - t^-0.8
        u = g / sqrt(v + epsilon1);  u /= max(1, rms(u) / clipping_threshold)
        m = beta1 m + (1 - beta1) u                    (no bias correction)
        w -= learning_rate * m * max(rms(w), epsilon2)  (multiply_by_parameter_scale)
    v is factored into row and column means (vr, vc) for weights whose second-largest dimension reaches
    ``min_dim_size_to_factor`` (none in BERT-base at 10**6).

    ``grad_accum_steps=N > 1`` is bert4keras's gradient accumulation, not Keras's: t still counts batches;
    at every batch whose index (from 0) is a multiple of N the update uses the mean of the gradients summed
    since the last update (at batch 0, nothing: zeros, which moves no weight), and the current batch's
    gradient starts the next sum. So the gradients of batches 0..N-1 are applied at batch N, and those of
    the batches after the last multiple of N are never applied. All state, sums included, is in
    ``variables``, so a Keras backup resumes exactly.

    ``lr_multipliers`` and ``use_ema``: see ``LayerRatesAndAveraging`` (the update is learning_rate times
    a step that does not depend on it, so a multiplier scales the update exactly).
    """

    def __init__(self, learning_rate=5e-4, beta1=0.9, epsilon1=1e-30, epsilon2=1e-3,
                 multiply_by_parameter_scale=True, clipping_threshold=1.0, min_dim_size_to_factor=10**6,
                 grad_accum_steps=1, name="adafactor", **kwargs):
        if kwargs.get("gradient_accumulation_steps"):
            raise ValueError("AdaFactor accumulates as bert4keras does: pass grad_accum_steps, not Keras's "
                             "gradient_accumulation_steps (which counts steps otherwise)")
        if int(grad_accum_steps) < 1:
            raise ValueError(f"grad_accum_steps must be >= 1, got {grad_accum_steps}")
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta1, self.epsilon1, self.epsilon2 = float(beta1), float(epsilon1), float(epsilon2)
        self.multiply_by_parameter_scale = bool(multiply_by_parameter_scale)
        self.clipping_threshold = None if clipping_threshold is None else float(clipping_threshold)
        self.min_dim_size_to_factor = int(min_dim_size_to_factor)
        self.grad_accum_steps = int(grad_accum_steps)

    def factored_axes(self, shape):
        """(axis averaged for vr, axis averaged for vc) when ``shape`` is factored, else None: vr keeps the
        second-largest dimension, vc the largest (ties broken as numpy's argpartition, as bert4keras)."""
        if len(shape) < 2:
            return None
        order = np.argpartition(np.array(shape), -2)
        largest, second = int(order[-1]), int(order[-2])
        if shape[second] < self.min_dim_size_to_factor:
            return None
        return largest, second

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums = self.add_optimizer_variables(var_list, "momentum") if self.beta1 > 0 else None
        self._second_moments = []   # per variable: (v,) or (vr, vc)
        for variable in var_list:
            axes = self.factored_axes(tuple(variable.shape))
            if axes is None:
                self._second_moments.append((self.add_variable_from_reference(variable, "velocity"),))
                continue
            moments = []
            for axis, part in zip(axes, ("row", "column")):
                shape = list(variable.shape)
                shape[axis] = 1
                moments.append(self.add_variable(shape, dtype=variable.dtype,
                                                 name=f"{variable.name}_velocity_{part}"))
            self._second_moments.append(tuple(moments))
        self._gradient_sums = (self.add_optimizer_variables(var_list, "gradient_sum")
                               if self.grad_accum_steps > 1 else None)

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        if keras.backend.backend() == "torch" and len(self._second_moments[index]) == 1:
            return self.update_in_place(gradient, variable, learning_rate, index)
        self.update_with_ops(gradient, variable, learning_rate, index)

    def update_with_ops(self, gradient, variable, learning_rate, index):
        dtype = variable.dtype
        gradient = ops.cast(gradient, dtype)
        steps = self.grad_accum_steps
        if steps > 1:
            total = self._gradient_sums[index]
            due = ops.equal(ops.mod(self.iterations, steps), 0)
            grad = ops.divide(total, steps)

            def assign(state, value):   # state moves only on a due batch
                value = ops.where(due, value, ops.convert_to_tensor(state))
                self.assign(state, value)
                return value
        else:
            grad = gradient

            def assign(state, value):
                self.assign(state, value)
                return value

        t = ops.cast(self.iterations + 1, dtype)
        beta2 = ops.subtract(1.0, ops.power(t, -0.8))
        keep, take = beta2, ops.subtract(1.0, beta2)
        g2 = ops.add(ops.square(grad), self.epsilon1)
        moments = self._second_moments[index]
        if len(moments) == 1:
            v = assign(moments[0], ops.add(ops.multiply(keep, moments[0]), ops.multiply(take, g2)))
        else:
            row_axis, column_axis = self.factored_axes(tuple(variable.shape))
            vr = assign(moments[0], ops.add(ops.multiply(keep, moments[0]),
                                            ops.multiply(take, ops.mean(g2, axis=row_axis, keepdims=True))))
            vc = assign(moments[1], ops.add(ops.multiply(keep, moments[1]),
                                            ops.multiply(take, ops.mean(g2, axis=column_axis, keepdims=True))))
            v = ops.divide(ops.multiply(vr, vc), ops.mean(vr, axis=column_axis, keepdims=True))
        update = ops.divide(grad, ops.sqrt(ops.add(v, self.epsilon1)))
        if self.clipping_threshold is not None:
            update = ops.divide(update, ops.maximum(1.0, ops.divide(rms(update), self.clipping_threshold)))
        if self.beta1 > 0:
            m = self._momentums[index]
            update = assign(m, ops.add(ops.multiply(self.beta1, m), ops.multiply(1.0 - self.beta1, update)))
        if self.multiply_by_parameter_scale:
            update = ops.multiply(update, ops.maximum(rms(variable), self.epsilon2))
        rate = ops.cast(self.layer_rate(learning_rate, variable), dtype)
        assign(variable, ops.subtract(variable, ops.multiply(rate, update)))
        if steps > 1:
            self.assign(total, ops.where(due, gradient, ops.add(ops.convert_to_tensor(total), gradient)))

    def update_in_place(self, gradient, variable, learning_rate, index):
        """``update_with_ops`` for an unfactored weight on PyTorch: the same ops in the same order (so the same
        floats, tests/torch_paths.py) in place, where each Keras op would allocate a weight-sized tensor;
        eager, so a batch that only adds to the gradient sum skips the update."""
        import torch

        with torch.no_grad():
            dtype, steps = variable.dtype, self.grad_accum_steps
            gradient = ops.cast(gradient, dtype)
            grad = gradient
            if steps > 1:
                total = self._gradient_sums[index].value
                if not bool(ops.equal(ops.mod(self.iterations, steps), 0)):
                    total.add_(gradient)
                    return
                grad = torch.div(total, steps)
            t = ops.cast(self.iterations + 1, dtype)
            beta2 = ops.subtract(1.0, ops.power(t, -0.8))
            keep, take = beta2, ops.subtract(1.0, beta2)
            v = self._second_moments[index][0].value
            v.mul_(keep).add_(torch.square(grad).add_(self.epsilon1).mul_(take))
            update = torch.div(grad, torch.add(v, self.epsilon1).sqrt_())
            if self.clipping_threshold is not None:
                update.div_(ops.maximum(1.0, ops.divide(rms(update), self.clipping_threshold)))
            if self.beta1 > 0:   # update is then the momentum itself
                m = self._momentums[index].value
                update = m.mul_(self.beta1).add_(update.mul_(1.0 - self.beta1))
            if self.multiply_by_parameter_scale:
                update = torch.mul(update, ops.maximum(rms(variable), self.epsilon2))
            rate = ops.cast(self.layer_rate(learning_rate, variable), dtype)
            variable.value.sub_(torch.mul(update, rate))
            if steps > 1:
                total.copy_(gradient)

    def update_applied(self):   # bert4keras's accumulation applies at batches 0, N, 2N, ...
        steps = self.grad_accum_steps
        return ops.equal(ops.mod(self._iterations, steps), 0) if steps > 1 else None

    def get_config(self):
        return {**super().get_config(), "beta1": self.beta1, "epsilon1": self.epsilon1,
                "epsilon2": self.epsilon2, "multiply_by_parameter_scale": self.multiply_by_parameter_scale,
                "clipping_threshold": self.clipping_threshold,
                "min_dim_size_to_factor": self.min_dim_size_to_factor,
                "grad_accum_steps": self.grad_accum_steps}


def rms(x):
    """Root mean square over all elements."""
    return ops.sqrt(ops.mean(ops.square(x)))
