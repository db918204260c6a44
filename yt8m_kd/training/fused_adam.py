"""Adam whose update of a variable is one fused kernel (TensorFlow's `ResourceApplyAdam`).

Keras 3's Adam updates each variable with about a dozen separate elementwise ops (cast, subtract,
multiply, square, sqrt, divide, three assigns), each a full pass over a parameter-sized tensor. At
the reference widths the student's 89M parameters make that update memory-bound and long: 159 to
262 ms a step on 2 cores (docs/design.md, "Training loop"). `ResourceApplyAdam` reads the
weight, both moments and the gradient once and writes the three back, in one multithreaded pass,
on every device TensorFlow has (CPU and GPU kernels). Unlike an XLA-compiled update it needs no
cluster around the whole update, so it runs unchanged inside `strategy.extended.update` under the
strategies of `training.strategy` (one device, mirrored, multi-worker mirrored: the update gets
each device's copy of a variable in turn).

The formula is Adam's (Kingma & Ba 2015, Algorithm 1, with the bias correction folded into the
step size), the same as Keras's `Adam.update_step`, with t the step being taken (iterations + 1):

    m <- m + (g - m) (1 - beta_1)
    v <- v + (g^2 - v) (1 - beta_2)
    w <- w - lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)

Small variables keep Keras's update: on 2 cores the kernel was slower than Keras's ops for
tensors of 1,024 to 16,384 elements (sharding a small tensor over threads costs more than it
saves), about even at 32,768 (faster in the recorded run, slower in an earlier one), and 2.0x to
2.8x faster from 65,536 on (`benchmarks/adam_update_benchmark.py` ->
`benchmarks/results/adam_update.json`).

The state is Keras's: the same `iterations`, `_momentums` and `_velocities` variables under the
same names, so checkpoints are interchangeable with `keras.optimizers.Adam`. AMSGrad, sparse
(IndexedSlices) gradients and other backends take Keras's own update.
"""

from __future__ import annotations

import keras
import tensorflow as tf

# The smallest variable the fused kernel updates (see the module docstring).
MIN_FUSED_ELEMENTS = 65536


@keras.saving.register_keras_serializable(package="yt8m_kd")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` with one `ResourceApplyAdam` kernel per variable update.

    Args:
        min_fused_elements: variables of at least this many elements are updated by the fused
            kernel, smaller ones (and those of an unknown size) by Keras's ops; None:
            MIN_FUSED_ELEMENTS.
        **kwargs: those of `keras.optimizers.Adam`.

    Example:
        optimizer = FusedAdam(learning_rate=2e-4)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
    """

    def __init__(self, min_fused_elements: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if min_fused_elements is None:
            min_fused_elements = MIN_FUSED_ELEMENTS
        self.min_fused_elements = min_fused_elements

    def get_config(self):
        return {**super().get_config(), "min_fused_elements": self.min_fused_elements}

    def update_step(self, gradient, variable, learning_rate):
        if (
            keras.backend.backend() != "tensorflow"
            or self.amsgrad
            or isinstance(gradient, tf.IndexedSlices)
            or not variable.dtype.is_floating
            or (variable.shape.num_elements() or 0) < self.min_fused_elements
        ):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        # Under a distribution strategy `variable` is this device's copy (inside
        # `extended.update`); the moments are distributed variables whose handle is this device's.
        m = self._momentums[index].value
        v = self._velocities[index].value
        local_step = tf.cast(self.iterations + 1, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=m.handle,
            v=v.handle,
            beta1_power=tf.pow(tf.cast(self.beta_1, dtype), local_step),
            beta2_power=tf.pow(tf.cast(self.beta_2, dtype), local_step),
            lr=tf.cast(learning_rate, dtype),
            beta1=tf.cast(self.beta_1, dtype),
            beta2=tf.cast(self.beta_2, dtype),
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
            use_locking=False,
        )
        return None
