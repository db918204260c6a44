"""The NeXtVLAD video model (teacher and k-frame students share it) and its analytic cost.

A video model maps a batch dict (`frames`, `num_frames`) to `{"logits": [B, C], "repr": [B, H]}`
(DESIGN.md, "The batch contract"); `repr` is the context-gated hidden vector the classifier reads.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from yt8m_kd.configs import ModelConfig
from yt8m_kd.modeling.classifiers import (
    ContextGating,
    LogisticClassifier,
    MixtureOfExpertsClassifier,
)
from yt8m_kd.modeling.nextvlad import NeXtVLAD
from yt8m_kd.modeling.normalization import GlobalBatchNormalization

# YouTube-8M features are quantized to 8 bits over [-2, 2] (reference/yt8m-format-and-metrics.md):
# value = q * 4 / 255 + (4 / 512 - 2), the bias putting each value in the middle of its bucket.
DEQUANTIZE_SCALE = 4.0 / 255.0
DEQUANTIZE_BIAS = 4.0 / 512.0 - 2.0  # -1.9921875


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
            values = ops.cast(inputs, "float32") * DEQUANTIZE_SCALE + DEQUANTIZE_BIAS
            return ops.cast(values, self.compute_dtype)
        return ops.cast(inputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


def _model_config_from_dict(config: dict) -> ModelConfig:
    config = dict(config)
    config["feature_sizes"] = tuple(int(s) for s in config["feature_sizes"])
    return ModelConfig(**config)


def _branch_shapes(config: ModelConfig) -> list[tuple[int, int, int]]:
    """(feature_size, cluster_size, groups) of each NeXtVLAD branch, one per feature.

    The first feature gets (K, G); every further one (K/2, G/2), as the reference's audio branch.
    """
    shapes = [(config.feature_sizes[0], config.cluster_size, config.groups)]
    for feature_size in config.feature_sizes[1:]:
        shapes.append((feature_size, max(1, config.cluster_size // 2), max(1, config.groups // 2)))
    return shapes


def make_classifier(config: ModelConfig) -> keras.layers.Layer:
    """The video-level classifier of `config`, named "classifier"; it returns logits in every case.

    "softmax" is the same single FC to logits as "logistic": only the loss differs (a softmax over
    single-label classes, UCF101, instead of a sigmoid per class, YouTube-8M).
    """
    if config.classifier in ("logistic", "softmax"):
        return LogisticClassifier(config.num_classes, config.l2_penalty, name="classifier")
    if config.classifier == "moe":
        return MixtureOfExpertsClassifier(
            config.num_classes, config.moe_num_mixtures, config.l2_penalty, name="classifier"
        )
    raise ValueError(f"unknown classifier {config.classifier!r} (logistic, moe or softmax)")


class VideoHeadMixin:
    """What both video models share after pooling their frames, and their config round trip.

    The model defines `dropout`, `hidden`, `hidden_bn`, `gating` and `classifier` layers and a
    `model_config`; `video_head` maps the pooled frames to the model outputs.
    """

    def video_head(self, x, training):
        """Pooled frames [B, D] -> {"logits": [B, C], "repr": [B, H]} (float32)."""
        x = self.dropout(x, training=training)
        h = self.hidden_bn(self.hidden(x), training=training)  # [B, H]
        h = self.gating(h, training=training)  # [B, H], the video representation
        logits = self.classifier(h)  # [B, C]
        return {"logits": ops.cast(logits, "float32"), "repr": ops.cast(h, "float32")}

    def get_config(self):
        config = super().get_config()
        config["config"] = dataclasses.asdict(self.model_config)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        model_config = _model_config_from_dict(config.pop("config"))
        return cls(model_config, **config)


@keras.saving.register_keras_serializable(package="yt8m_kd")
class NeXtVLADVideoModel(VideoHeadMixin, keras.Model):
    """NeXtVLAD per feature -> concat -> dropout -> hidden FC + BN -> context gating -> classifier.

    The reference's best single model at the `ModelConfig` defaults (reference/nextvlad.md).

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
            config = _model_config_from_dict(config)
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


def build_video_model(config: ModelConfig) -> keras.Model:
    """Constructs the model of `config` and builds it on a tiny dummy batch, so its weights exist.

    Frame features (`config.backbone == ""`) give a `NeXtVLADVideoModel`; an image backbone a
    `FrameEncoderVideoModel`, with its pretrained backbone weights loaded (`backbone_weights`).
    """
    if config.backbone:
        # Imported here: frame_encoders builds on this module.
        from yt8m_kd.modeling.frame_encoders import build_frame_encoder_model

        return build_frame_encoder_model(config)
    model = NeXtVLADVideoModel(config)
    dummy = {
        "frames": np.zeros((1, 2, sum(config.feature_sizes)), np.uint8),
        "num_frames": np.array([2], np.int32),
    }
    model(dummy, training=False)
    return model


# FLOP conventions for count_flops_per_video: a multiply-add is 2 FLOPs (a matmul [n, a] @ [a, b]
# costs 2*n*a*b); every other elementwise op is 1 FLOP per element, with these composites:
_SIGMOID = 3  # exp, add, reciprocal
_SOFTMAX = 3  # exp, sum, divide
_BATCH_NORM = 2  # inference: one multiply and one add with the folded scale and shift
_L2_NORMALISE = 3  # square, sum, divide (one sqrt per column is negligible)


def _nextvlad_flops(feature_size: int, cluster_size: int, groups: int, expansion: int, m: int):
    """Forward FLOPs of one NeXtVLAD layer on m frames, step by step (reference/nextvlad.md)."""
    expanded = expansion * feature_size  # lambda*F
    group_size = expanded // groups  # lambda*F/G
    assignments = m * groups * cluster_size  # entries of the [M*G, K] assignment
    descriptor = group_size * cluster_size  # entries of the [lambda*F/G, K] descriptor
    return (
        m * (2 * feature_size * expanded + expanded)  # 1. expansion FC + bias
        + m * (2 * expanded * groups + groups + _SIGMOID * groups)  # 2. attention FC, bias, sigmoid
        + m * groups  # 2. times the frame mask
        + m * 2 * expanded * groups * cluster_size  # 3. cluster-assignment FC (no bias)
        + assignments * (_BATCH_NORM + _SOFTMAX)  # 3. batch norm, softmax over K
        + assignments  # 4. act = softmax * alpha
        + assignments  # 5. a_sum, the sum over M*G
        + descriptor  # 5. a = a_sum * C
        + 2 * assignments * group_size  # 7. act^T @ x_tilde
        + descriptor  # 7. minus a
        + _L2_NORMALISE * descriptor  # 8. intra-normalisation
        + _BATCH_NORM * descriptor  # 9. output batch norm
    )


def count_flops_per_video(config: ModelConfig, num_frames: int) -> int:
    """Analytic forward FLOPs for one video of `num_frames` frames (multiply-add = 2 FLOPs).

    Counts every matmul and elementwise op of the model in inference mode (dropout is the identity;
    the padding selects and reshapes move data and are not counted):
      - dequantization: a multiply and an add per input value;
      - each NeXtVLAD branch, step by step (`_nextvlad_flops`): expansion and cluster-assignment
        FCs dominate and scale with frames, and so does act^T @ x_tilde;
      - hidden FC (no bias) and its batch norm;
      - context gating: squeeze FC, batch norm, ReLU, excite FC, sigmoid, and the gating multiply;
      - the classifier: logistic FC + bias, or the MoE's gate and expert FCs, softmax, sigmoids,
        mixture and logit.
    At the reference configuration that is about 2.9 GFLOP at 300 frames and 0.45 GFLOP at 30
    (reference/nextvlad.md). An image model (`config.backbone`) adds its backbone on every frame
    (`yt8m_kd.modeling.frame_encoders.count_frame_encoder_flops`).
    """
    if config.backbone:
        from yt8m_kd.modeling.frame_encoders import count_frame_encoder_flops

        return count_frame_encoder_flops(config, num_frames)
    m = int(num_frames)
    flops = 2 * m * sum(config.feature_sizes)  # dequantize
    descriptor_size = 0
    for feature_size, cluster_size, groups in _branch_shapes(config):
        flops += _nextvlad_flops(feature_size, cluster_size, groups, config.expansion, m)
        descriptor_size += cluster_size * config.expansion * feature_size // groups
    return int(flops + _head_flops(config, descriptor_size))


def _head_flops(config: ModelConfig, descriptor_size: int) -> int:
    """Forward FLOPs of the video-level head on a descriptor_size-wide pooled vector: hidden FC,
    its batch norm, context gating and the classifier (conventions of count_flops_per_video)."""
    hidden = config.hidden_size
    bottleneck = hidden // config.gating_reduction
    classes = config.num_classes
    flops = 2 * descriptor_size * hidden + _BATCH_NORM * hidden  # hidden FC, batch norm
    flops += (
        2 * hidden * bottleneck  # squeeze FC
        + (_BATCH_NORM + 1) * bottleneck  # batch norm, ReLU
        + 2 * bottleneck * hidden  # excite FC
        + _SIGMOID * hidden  # sigmoid
        + hidden  # h * g
    )
    if config.classifier in ("logistic", "softmax"):
        flops += 2 * hidden * classes + classes  # FC + bias (the loss's softmax is not counted)
    else:
        mixtures = config.moe_num_mixtures
        flops += (
            2 * hidden * classes * (mixtures + 1)  # gate FC
            + 2 * hidden * classes * mixtures  # expert FC
            + classes * mixtures  # expert bias
            + _SOFTMAX * classes * (mixtures + 1)  # gate softmax
            + _SIGMOID * classes * mixtures  # expert sigmoids
            + 2 * classes * mixtures  # weighted sum over experts
            + 4 * classes  # clip, logit (two logs and a subtract)
        )
    return int(flops)


def model_size(model: keras.Model, config: ModelConfig, max_frames: int) -> dict:
    """Parameter counts and forward cost of a built model at the frames it sees per video.

    Non-trainable parameters are the batch-norm statistics (`non_trainable_weights`; the dropout
    seed state, a Keras variable too, is not a parameter), and a frozen image backbone's weights.
    """
    frames = config.k_frames if config.k_frames > 0 else max_frames
    return {
        "trainable_params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        "non_trainable_params": int(sum(np.prod(w.shape) for w in model.non_trainable_weights)),
        "frames": frames,
        "gflops_per_video": count_flops_per_video(config, frames) / 1e9,
    }
