"""Per-sample losses. Every function returns a [B] vector; the training loop reduces it once.

Per-sample first because SAKD weights samples individually; the reduction to a scalar is
`tf.nn.compute_average_loss(per_sample, global_batch_size=...)` in the step.
"""

from __future__ import annotations

import tensorflow as tf


def sigmoid_cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Multi-label cross-entropy, summed over classes: [B, C] -> [B].

    reference/yt8m-format-and-metrics.md, "CrossEntropyLoss": per video
    `sum_c -[y log p + (1 - y) log(1 - p)]`, summed (not averaged) over classes as in the starter
    and NeXtVLAD code. We compute it from logits with TensorFlow's stable formula instead of adding
    eps to p; the two agree to within eps-sized terms.
    """
    labels = tf.cast(labels, logits.dtype)
    per_class = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    return tf.reduce_sum(per_class, axis=-1)
