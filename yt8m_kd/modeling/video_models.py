"""The NeXtVLAD video model on YouTube-8M frame features (teacher and k-frame students share it), its
dequantizing first layer, and its analytic cost.

A video model maps a batch dict (`frames`, `num_frames`) to `{"logits": [B, C], "repr": [B, H]}`
(docs/design.md, "The batch contract"); `repr` is the context-gated hidden vector the classifier reads.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from yt8m_kd.configs import ModelConfig
from yt8m_kd.data import yt8m_records
from yt8m_kd.modeling.classifiers import ContextGating
from yt8m_kd.modeling.flops import head_flops, nextvlad_flops
from yt8m_kd.modeling.nextvlad import NeXtVLAD
from yt8m_kd.modeling.normalization import GlobalBatchNormalization
from yt8m_kd.modeling.video_head import VideoHeadMixin, make_classifier, model_config_from_dict


@keras.saving.register_keras_serializable(package="yt8m_kd")
class Dequantize(keras.layers.Layer):
    """uint8 YouTube-8M features -> float: `x * 4/255 - 1.9921875`; float input passes unchanged.

    It is the model's first op, so the features stay uint8 through tf.data and the host-to-device
    copy (four times fewer bytes), and the same model also takes float features.

    Call arguments:
      inputs: any shape, an integer dtype (quantized) or a float dtype (already dequantized).

    Returns:
      The same shape in the layer's compute dtype.

    Example:

    >>> Dequantize()(np.array([0, 128, 255], np.uint8)).numpy()
    array([-1.9921875 ,  0.01565576,  2.0078125 ], dtype=float32)
    """

    def call(self, inputs):
        inputs = ops.convert_to_tensor(inputs)
        if "int" in str(inputs.dtype):
            # YouTube-8M features are quantized to 8 bits over [-2, 2]: the reference formula.
            return ops.cast(yt8m_records.dequantize(inputs), self.compute_dtype)
        return ops.cast(inputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


def _branch_shapes(config: ModelConfig) -> list[tuple[int, int, int]]:
    """(feature_size, cluster_size, groups) of each NeXtVLAD branch, one per feature.

    The first feature gets (K, G); every further one (K/2, G/2), as the reference's audio branch.
    """
    shapes = [(config.feature_sizes[0], config.cluster_size, config.groups)]
    for feature_size in config.feature_sizes[1:]:
        shapes.append((feature_size, max(1, config.cluster_size // 2), max(1, config.groups // 2)))
    return shapes


@keras.saving.register_keras_serializable(package="yt8m_kd")
class NeXtVLADVideoModel(VideoHeadMixin, keras.Model):
    """NeXtVLAD per feature -> concat -> dropout -> hidden FC + BN -> context gating -> classifier.

    The reference's best single model at the `ModelConfig` defaults (docs/nextvlad.md).

    Args:
      config: a `ModelConfig`, or its `dataclasses.asdict` (as stored by `get_config`).
      **kwargs: base Model arguments (name, dtype, ...).

    Call arguments:
      inputs: a dict with `frames` [B, T, sum(feature_sizes)] uint8 (quantized) or float32, and
        `num_frames` [B] int32 (frames past it are padding and never change the output).
      training: dropout and batch statistics on when True.

    Returns:
      `{"logits": [B, C] float32, "repr": [B, H] float32}`.

    Example:

    >>> config = ModelConfig(feature_sizes=(16, 8), num_classes=5, cluster_size=8, groups=4,
    ...                      hidden_size=32, gating_reduction=4)
    >>> model = NeXtVLADVideoModel(config)
    >>> out = model({"frames": np.zeros((2, 10, 24), np.uint8), "num_frames": np.array([4, 10])})
    >>> out["logits"].shape, out["repr"].shape
    (TensorShape([2, 5]), TensorShape([2, 32]))
    """

    def __init__(self, config: ModelConfig | dict, **kwargs):
        kwargs.setdefault("name", "nextvlad_video_model")
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = model_config_from_dict(config)
        self.model_config = config

        self.dequantize = Dequantize(name="dequantize")
        # One attribute per branch, not a list: Keras wraps a list attribute in a container that
        # tf.train.Checkpoint does not follow, and the branches would be missing from checkpoints.
        self._num_branches = len(config.feature_sizes)
        for i, (feature_size, cluster_size, groups) in enumerate(_branch_shapes(config)):
            branch = NeXtVLAD(
                feature_size=feature_size,
                cluster_size=cluster_size,
                groups=groups,
                expansion=config.expansion,
                name=f"nextvlad_{i}",
            )
            setattr(self, f"nextvlad_{i}", branch)
        self.dropout = keras.layers.Dropout(config.drop_rate, name="dropout")
        # No ReLU after the hidden FC: the reference code removed it.
        self.hidden = keras.layers.Dense(config.hidden_size, use_bias=False, name="hidden")
        self.hidden_bn = GlobalBatchNormalization(name="hidden_bn")
        self.gating = ContextGating(config.gating_reduction, name="context_gating")
        self.classifier = make_classifier(config)

    @property
    def branches(self) -> list[NeXtVLAD]:
        """The NeXtVLAD layers, one per feature in feature_sizes order (rgb, then audio)."""
        return [getattr(self, f"nextvlad_{i}") for i in range(self._num_branches)]

    def call(self, inputs, training=False):
        frames = self.dequantize(inputs["frames"])  # [B, T, D] float
        num_frames = ops.cast(inputs["num_frames"], "int32")  # [B]
        feature_total = sum(self.model_config.feature_sizes)
        if frames.shape[-1] is not None and frames.shape[-1] != feature_total:
            raise ValueError(
                f"frames have {frames.shape[-1]} features per frame, expected "
                f"sum(feature_sizes) = {feature_total} ({self.model_config.feature_sizes})"
            )
        mask = tf.sequence_mask(num_frames, maxlen=ops.shape(frames)[1])  # [B, T] bool

        descriptors = []
        start = 0
        for branch in self.branches:
            features = frames[:, :, start : start + branch.feature_size]  # [B, T, F_i]
            start += branch.feature_size
            descriptors.append(branch(features, mask, training=training))  # [B, K_i*l*F_i/G_i]
        x = ops.concatenate(descriptors, axis=-1)  # [B, sum_i K_i*l*F_i/G_i]
        return self.video_head(x, training)


def build_nextvlad_video_model(config: ModelConfig) -> NeXtVLADVideoModel:
    """The NeXtVLAD model of `config` (frame features, `config.backbone == ""`), built on a tiny
    dummy batch, so its weights exist."""
    model = NeXtVLADVideoModel(config)
    dummy = {
        "frames": np.zeros((1, 2, sum(config.feature_sizes)), np.uint8),
        "num_frames": np.array([2], np.int32),
    }
    model(dummy, training=False)
    return model


def count_nextvlad_video_flops(config: ModelConfig, num_frames: int) -> int:
    """Analytic forward FLOPs of the NeXtVLAD model for one video of `num_frames` frames.

    Counts every matmul and elementwise op of the model in inference mode (conventions of
    `yt8m_kd.modeling.flops`; dropout is the identity, the padding selects and reshapes move data
    and are not counted):
      - dequantization: a multiply and an add per input value;
      - each NeXtVLAD branch, step by step (`nextvlad_flops`): expansion and cluster-assignment
        FCs dominate and scale with frames, and so does act^T @ x_tilde;
      - hidden FC (no bias) and its batch norm;
      - context gating: squeeze FC, batch norm, ReLU, excite FC, sigmoid, and the gating multiply;
      - the classifier: logistic FC + bias, or the MoE's gate and expert FCs, softmax, sigmoids,
        mixture and logit.
    At the reference configuration that is about 2.9 GFLOP at 300 frames and 0.45 GFLOP at 30
    (docs/nextvlad.md).
    """
    m = int(num_frames)
    flops = 2 * m * sum(config.feature_sizes)  # dequantize
    descriptor_size = 0
    for feature_size, cluster_size, groups in _branch_shapes(config):
        flops += nextvlad_flops(feature_size, cluster_size, groups, config.expansion, m)
        descriptor_size += cluster_size * config.expansion * feature_size // groups
    return int(flops + head_flops(config, descriptor_size))
