"""Batch normalisation whose statistics are those of the global batch, with padding masked out."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="yt8m_kd")
class GlobalBatchNormalization(keras.layers.BatchNormalization):
    """BatchNormalization synchronised across replicas, including when a mask is given.

    Under MirroredStrategy each replica sees a slice of the global batch. With per-replica
    statistics the result would depend on the number of replicas; synchronised statistics make N
    replicas train exactly like one device on the same global batch. Keras synchronises the
    unmasked case (`synchronized=True`) but computes masked moments locally, so the masked case is
    done here: sums of x, x^2 and the mask count are all-reduced, then
    mean = E[x], variance = E[x^2] - E[x]^2, the formula Keras uses for the unmasked case.

    Args:
      **kwargs: BatchNormalization arguments; `synchronized` defaults to True.

    Example:

    >>> bn = GlobalBatchNormalization()
    >>> x = keras.random.normal((2, 5, 3))
    >>> mask = ops.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], "bool")
    >>> tuple(bn(x, training=True, mask=mask).shape)
    (2, 5, 3)
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("synchronized", True)
        super().__init__(**kwargs)

    def _moments(self, inputs, mask):
        if mask is None or not self.synchronized:
            return super()._moments(inputs, mask)
        context = tf.distribute.get_replica_context()
        weights = ops.cast(
            ops.broadcast_to(ops.expand_dims(mask, -1), ops.shape(inputs)), inputs.dtype
        )
        axes = self._reduction_axes
        local = [
            ops.sum(inputs * weights, axes),
            ops.sum(ops.square(inputs) * weights, axes),
            ops.sum(weights, axes),
        ]
        if context is not None:
            local = context.all_reduce(tf.distribute.ReduceOp.SUM, local)
        total, squared_total, count = local
        mean = tf.math.divide_no_nan(total, count)
        variance = ops.maximum(tf.math.divide_no_nan(squared_total, count) - ops.square(mean), 0.0)
        return mean, variance
