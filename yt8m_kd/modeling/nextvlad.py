"""NeXtVLAD: frame-level features -> one video-level descriptor (Lin, Xiao, Fan, ECCV-W 2018).

The nine steps of docs/nextvlad.md, one Keras layer. Padding frames (mask 0) contribute exactly
nothing: their group attention is 0, and in training the assignment batch norm takes its moments over
valid frames only.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from yt8m_kd.modeling.normalization import GlobalBatchNormalization


@keras.saving.register_keras_serializable(package="yt8m_kd")
class NeXtVLAD(keras.layers.Layer):
    """NeXtVLAD aggregation of a variable number of frames into one vector.

    Each frame is expanded to lambda*F, split into G groups of lambda*F/G, and every group chunk is
    softly assigned to K clusters (using the whole expanded frame) and weighted by a per-group
    attention. The residuals to the K cluster centres are summed over frames and groups,
    intra-normalised per cluster and batch-normalised.

    Args:
      feature_size: F, the per-frame input size.
      cluster_size: K, the number of clusters.
      groups: G, the number of groups each expanded frame is split into.
      expansion: lambda, the expansion factor of the first FC.
      **kwargs: base Layer arguments (name, dtype, ...).

    Call arguments:
      frames: [B, M, F] float frames.
      mask: [B, M] float or bool, 1/True for valid frames, 0/False for padding. None = all valid.
      training: batch norms use (masked) batch statistics when True.

    Returns:
      [B, K * lambda * F / G] float.

    Example:

    >>> layer = NeXtVLAD(feature_size=16, cluster_size=8, groups=4, expansion=2)
    >>> frames = keras.random.normal((2, 5, 16))
    >>> mask = ops.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], "float32")
    >>> tuple(layer(frames, mask).shape)  # K * lambda * F / G = 8 * 2 * 16 / 4
    (2, 64)
    """

    def __init__(
        self,
        feature_size: int,
        cluster_size: int,
        groups: int,
        expansion: int,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if (expansion * feature_size) % groups:
            raise ValueError(
                f"expansion * feature_size ({expansion} * {feature_size}) must be divisible by "
                f"groups ({groups})"
            )
        self.feature_size = int(feature_size)
        self.cluster_size = int(cluster_size)
        self.groups = int(groups)
        self.expansion = int(expansion)
        self.expanded_size = self.expansion * self.feature_size  # lambda*F
        self.group_size = self.expanded_size // self.groups  # lambda*F/G
        self.output_size = self.cluster_size * self.group_size  # K*lambda*F/G
        self.supports_masking = False

        # Step 1: expansion FC with bias, no activation.
        self.expansion_dense = keras.layers.Dense(self.expanded_size, name="expansion")
        # Step 2: group attention, one sigmoid gate per group, with bias.
        self.attention_dense = keras.layers.Dense(
            self.groups, activation="sigmoid", name="group_attention"
        )
        # Step 3: soft assignment of every group chunk, from the whole expanded frame, no bias
        # (the batch norm that follows has its own shift).
        self.cluster_dense = keras.layers.Dense(
            self.groups * self.cluster_size,
            use_bias=False,
            kernel_initializer=keras.initializers.RandomNormal(
                stddev=1.0 / math.sqrt(self.expanded_size)
            ),
            name="cluster_weights",
        )
        self.cluster_bn = GlobalBatchNormalization(name="cluster_bn")
        # Step 9: batch norm of the flattened descriptor.
        self.output_bn = GlobalBatchNormalization(name="output_bn")

    def build(self, frames_shape):
        if frames_shape[-1] is not None and frames_shape[-1] != self.feature_size:
            raise ValueError(
                f"{self.name}: frames have {frames_shape[-1]} features per frame, "
                f"expected feature_size={self.feature_size}"
            )
        self.expansion_dense.build((None, None, self.feature_size))
        self.attention_dense.build((None, None, self.expanded_size))
        self.cluster_dense.build((None, None, self.expanded_size))
        self.cluster_bn.build((None, None, self.groups * self.cluster_size))
        # Step 5: the cluster centres C, [1, lambda*F/G, K].
        self.centres = self.add_weight(
            name="centres",
            shape=(1, self.group_size, self.cluster_size),
            initializer=keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(self.group_size)),
        )
        self.output_bn.build((None, self.output_size))

    def call(self, frames, mask=None, training=None):
        batch_size, max_frames = ops.shape(frames)[0], ops.shape(frames)[1]
        if mask is None:
            mask = ops.ones((batch_size, max_frames), dtype="bool")
        valid = ops.cast(mask, "bool")  # [B, M]
        # Zero the padding frames first, so that even NaN or inf garbage there cannot leak through
        # a 0 * NaN below.
        frames = ops.where(valid[:, :, None], frames, ops.zeros_like(frames))

        x_dot = self.expansion_dense(frames)  # [B, M, lambda*F]

        alpha = self.attention_dense(x_dot)  # [B, M, G]
        alpha = alpha * ops.cast(valid, alpha.dtype)[:, :, None]  # padding frames: alpha = 0
        alpha = ops.reshape(alpha, (batch_size, max_frames * self.groups, 1))  # [B, M*G, 1]

        logits = self.cluster_dense(x_dot)  # [B, M, G*K]
        # The moments come from valid frames only, so padding cannot move them in training either.
        logits = self.cluster_bn(logits, training=training, mask=valid)
        logits = ops.reshape(
            logits, (batch_size, max_frames * self.groups, self.cluster_size)
        )  # [B, M*G, K]
        assignment = ops.softmax(logits, axis=-1)

        act = assignment * alpha  # Step 4: [B, M*G, K]
        a_sum = ops.sum(act, axis=1, keepdims=True)  # Step 5: [B, 1, K]
        a = a_sum * ops.cast(self.centres, a_sum.dtype)  # [B, lambda*F/G, K]

        x_tilde = ops.reshape(
            x_dot, (batch_size, max_frames * self.groups, self.group_size)
        )  # Step 6: [B, M*G, lambda*F/G]
        vlad = ops.matmul(ops.transpose(act, (0, 2, 1)), x_tilde)  # Step 7: [B, K, lambda*F/G]
        vlad = ops.transpose(vlad, (0, 2, 1)) - a  # [B, lambda*F/G, K]

        # Step 8: intra-normalisation, one L2 per cluster along lambda*F/G; no global L2 after.
        # In float32: under mixed precision the 1e-12 floor would be 0 in float16, and an empty
        # cluster (or a video without valid frames) would give 0 / 0.
        vlad32 = ops.cast(vlad, "float32")
        squared_norm = ops.sum(ops.square(vlad32), axis=1, keepdims=True)  # [B, 1, K]
        vlad = ops.cast(vlad32 / ops.sqrt(ops.maximum(squared_norm, 1e-12)), vlad.dtype)

        vlad = ops.reshape(vlad, (batch_size, self.output_size))  # Step 9: [B, K*lambda*F/G]
        return self.output_bn(vlad, training=training)

    def compute_output_shape(self, frames_shape, mask_shape=None):
        return (frames_shape[0], self.output_size)

    def get_config(self):
        config = super().get_config()
        config.update(
            feature_size=self.feature_size,
            cluster_size=self.cluster_size,
            groups=self.groups,
            expansion=self.expansion,
        )
        return config
