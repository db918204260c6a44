"""The video-level head: SE context gating and the two classifiers (logistic, mixture of experts).

Both classifiers return logits, so that every loss (cross-entropy, distillation) starts from the same
kind of output; `keras.ops.sigmoid(logits)` gives the class probabilities.
"""

from __future__ import annotations

import keras
from keras import ops

from yt8m_kd.modeling.normalization import GlobalBatchNormalization

# The mixture of experts gives probabilities; its logits are taken after clipping to this range
# so that they stay finite (logit(1e-7) is about -16.1).
MOE_PROBABILITY_EPSILON = 1e-7


def _slim_l2(l2_penalty: float) -> keras.regularizers.Regularizer | None:
    """The reference's slim l2 regularizer, penalty * sum(w^2) / 2, as a Keras L2."""
    return keras.regularizers.L2(l2_penalty / 2.0) if l2_penalty > 0 else None


@keras.saving.register_keras_serializable(package="yt8m_kd")
class ContextGating(keras.layers.Layer):
    """Squeeze-and-excitation context gating (docs/nextvlad.md, "SE context gating").

    `g = ReLU(BN(h @ W1))` with W1 [H, H/r] and no bias; `g = sigmoid(g @ W2)` with W2 [H/r, H], no
    batch norm and no bias; the output is `h * g`.

    Args:
      reduction: r, the bottleneck is H / r wide.
      **kwargs: base Layer arguments.

    Call arguments:
      inputs: [B, H] float.
      training: the batch norm uses batch statistics when True.

    Returns:
      [B, H] float, the gated input.

    Example:

    >>> gating = ContextGating(reduction=4)
    >>> tuple(gating(keras.random.normal((2, 16))).shape)
    (2, 16)
    """

    def __init__(self, reduction: int, **kwargs):
        super().__init__(**kwargs)
        self.reduction = int(reduction)

    def build(self, input_shape):
        hidden_size = int(input_shape[-1])
        if hidden_size % self.reduction:
            raise ValueError(
                f"{self.name}: width {hidden_size} is not divisible by reduction {self.reduction}"
            )
        self.squeeze = keras.layers.Dense(
            hidden_size // self.reduction, use_bias=False, name="squeeze"
        )
        self.squeeze_bn = GlobalBatchNormalization(name="squeeze_bn")
        self.excite = keras.layers.Dense(
            hidden_size, use_bias=False, activation="sigmoid", name="excite"
        )
        self.squeeze.build((None, hidden_size))
        self.squeeze_bn.build((None, hidden_size // self.reduction))
        self.excite.build((None, hidden_size // self.reduction))

    def call(self, inputs, training=None):
        gates = self.squeeze(inputs)  # [B, H/r]
        gates = ops.relu(self.squeeze_bn(gates, training=training))
        gates = self.excite(gates)  # [B, H], in (0, 1)
        return inputs * gates

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(reduction=self.reduction)
        return config


@keras.saving.register_keras_serializable(package="yt8m_kd")
class LogisticClassifier(keras.layers.Layer):
    """One FC layer with bias to the classes; returns logits (probabilities = sigmoid(logits)).

    Args:
      num_classes: C.
      l2_penalty: weight decay of the kernel in the reference's slim convention,
        `l2_penalty * sum(w^2) / 2` (a Keras `L2(l2_penalty / 2)`); the bias is not decayed.
      **kwargs: base Layer arguments.

    Call arguments:
      inputs: [B, H] float.

    Returns:
      [B, C] logits.

    Example:

    >>> classifier = LogisticClassifier(num_classes=5, l2_penalty=1e-5)
    >>> tuple(classifier(keras.random.normal((2, 16))).shape)
    (2, 5)
    """

    def __init__(self, num_classes: int, l2_penalty: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.l2_penalty = float(l2_penalty)
        self.dense = keras.layers.Dense(
            self.num_classes, kernel_regularizer=_slim_l2(self.l2_penalty), name="logits"
        )

    def build(self, input_shape):
        self.dense.build((None, int(input_shape[-1])))

    def call(self, inputs):
        return self.dense(inputs)  # [B, C]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, l2_penalty=self.l2_penalty)
        return config


@keras.saving.register_keras_serializable(package="yt8m_kd")
class MixtureOfExpertsClassifier(keras.layers.Layer):
    """The YouTube-8M starter code's mixture of experts, returning logits.

    Per class, `num_mixtures` sigmoid experts are mixed by a softmax gate over `num_mixtures + 1`
    entries; the extra entry is a dummy expert that always predicts 0, so the gate can push the
    probability down on its own. Gate FC: no bias; expert FC: with bias; both kernels are l2-decayed.

    The mixture is a probability p, not a sigmoid of a linear function, so the returned logits are
    `log(p) - log(1 - p)` with p clipped to [1e-7, 1 - 1e-7]: `sigmoid(logits)` gives p back within
    the clip, and every logits-based loss works unchanged.

    Args:
      num_classes: C.
      num_mixtures: experts per class.
      l2_penalty: kernel weight decay, slim convention `l2_penalty * sum(w^2) / 2`.
      **kwargs: base Layer arguments.

    Call arguments:
      inputs: [B, H] float.

    Returns:
      [B, C] float32 logits.

    Example:

    >>> moe = MixtureOfExpertsClassifier(num_classes=5, num_mixtures=2)
    >>> tuple(moe(keras.random.normal((2, 16))).shape)
    (2, 5)
    """

    def __init__(self, num_classes: int, num_mixtures: int = 2, l2_penalty: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.num_mixtures = int(num_mixtures)
        self.l2_penalty = float(l2_penalty)
        self.gates = keras.layers.Dense(
            self.num_classes * (self.num_mixtures + 1),
            use_bias=False,
            kernel_regularizer=_slim_l2(self.l2_penalty),
            name="gates",
        )
        self.experts = keras.layers.Dense(
            self.num_classes * self.num_mixtures,
            kernel_regularizer=_slim_l2(self.l2_penalty),
            name="experts",
        )

    def build(self, input_shape):
        self.gates.build((None, int(input_shape[-1])))
        self.experts.build((None, int(input_shape[-1])))

    def probabilities(self, inputs):
        """[B, H] -> [B, C] class probabilities of the mixture."""
        # float32 from here: the 1e-7 clip and the logit need more than float16.
        gate_logits = ops.cast(self.gates(inputs), "float32")  # [B, C*(m+1)]
        expert_logits = ops.cast(self.experts(inputs), "float32")  # [B, C*m]
        gate_logits = ops.reshape(gate_logits, (-1, self.num_classes, self.num_mixtures + 1))
        expert_logits = ops.reshape(expert_logits, (-1, self.num_classes, self.num_mixtures))
        gates = ops.softmax(gate_logits, axis=-1)  # [B, C, m+1]
        experts = ops.sigmoid(expert_logits)  # [B, C, m]
        # The dummy expert (last gate) predicts 0 and so adds nothing to the sum.
        return ops.sum(gates[..., : self.num_mixtures] * experts, axis=-1)  # [B, C]

    def call(self, inputs):
        p = ops.clip(
            self.probabilities(inputs), MOE_PROBABILITY_EPSILON, 1.0 - MOE_PROBABILITY_EPSILON
        )
        return ops.log(p) - ops.log1p(-p)  # [B, C] logits

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            num_mixtures=self.num_mixtures,
            l2_penalty=self.l2_penalty,
        )
        return config
