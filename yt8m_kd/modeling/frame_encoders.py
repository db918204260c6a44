"""Image-backbone video models (UCF101): a keras.applications CNN on every frame, then the video head.

`frames` [B, T, H, W, 3] uint8 -> the backbone's own preprocessing -> CNN (include_top=False, average
pooled) on the valid frames only -> [B, T, F] -> NeXtVLAD or a masked mean over frames -> dropout ->
hidden FC + BN -> context gating (`repr`) -> classifier (`logits`): the head of the NeXtVLAD video
model (docs/nextvlad.md), so teacher and student differ only in their `ModelConfig`s. The backbones,
their preprocessing and weights: `yt8m_kd.modeling.backbones`.

Padding frames never reach the backbone: the valid frames are gathered out of the [B*T] frames, run
through the CNN and scattered back, padding positions getting zero features, which the pooling then
masks out. So padding changes neither the output nor, in training, the backbone's batch-norm
statistics (the batch norms see exactly the valid frames of the batch, also under XLA and summed
over replicas: `BackboneBatchNormalization`).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from yt8m_kd.configs import POOLINGS, ModelConfig
from yt8m_kd.modeling.backbones import (
    MIN_IMAGE_SIZE,
    backbone_flops_per_frame,
    get_backbone,
    load_backbone_weights,
    make_backbone,
)
from yt8m_kd.modeling.classifiers import ContextGating
from yt8m_kd.modeling.flops import head_flops, nextvlad_flops
from yt8m_kd.modeling.nextvlad import NeXtVLAD
from yt8m_kd.modeling.normalization import GlobalBatchNormalization
from yt8m_kd.modeling.video_head import VideoHeadMixin, make_classifier, model_config_from_dict


def check_frame_encoder_config(config: ModelConfig) -> None:
    """Raises ValueError for an image-model config that cannot be built, saying which field."""
    get_backbone(config.backbone)
    if config.image_size < MIN_IMAGE_SIZE:
        raise ValueError(
            f"image_size={config.image_size}: backbone {config.backbone!r} needs the frame size, "
            f"at least {MIN_IMAGE_SIZE}"
        )
    if config.pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {config.pooling!r} (one of {', '.join(POOLINGS)})")


def temporal_features(features, num_frames):
    """[B, T, F] per-frame features -> [B, T, 2F] = [f_t, f_t * tau_t], tau_t = 2 t / (n - 1) - 1
    the frame's place in the clip, from -1 (first valid frame) to 1 (last; 0 for n = 1).

    NeXtVLAD and the mean are blind to frame order; with the time-weighted copy, the mean of
    f * tau is "late minus early" appearance and NeXtVLAD's assignments can separate early from
    late frames, so motion direction and the order of events become visible. Zeros stay zeros
    at padding.
    """
    n = ops.cast(num_frames, "float32")[:, None]  # [B, 1]
    t = ops.cast(ops.arange(ops.shape(features)[1]), "float32")[None, :]  # [1, T]
    tau = ops.where(n > 1, 2.0 * t / ops.maximum(n - 1.0, 1.0) - 1.0, 0.0)  # [B, T]
    tau = ops.where(t < n, tau, 0.0)
    return ops.concatenate([features, features * tau[:, :, None]], axis=-1)


@keras.saving.register_keras_serializable(package="yt8m_kd")
class MaskedMeanPooling(keras.layers.Layer):
    """The mean of the valid frames' features.

    Call arguments:
      frames: [B, M, F] float.
      mask: [B, M] bool or float, 1/True for valid frames. None = all valid.

    Returns:
      [B, F]; a video without valid frames gives zeros.

    Example:

    >>> frames = ops.reshape(ops.arange(12, dtype="float32"), (2, 3, 2))
    >>> MaskedMeanPooling()(frames, ops.array([[1, 1, 0], [1, 1, 1]], "bool")).numpy()
    array([[1., 2.],
           [8., 9.]], dtype=float32)
    """

    def call(self, frames, mask=None):
        if mask is None:
            return ops.mean(frames, axis=1)
        valid = ops.cast(mask, "bool")[:, :, None]  # [B, M, 1]
        # A select, not a multiply: NaN or inf in padding cannot leak through 0 * NaN.
        total = ops.sum(ops.where(valid, frames, ops.zeros_like(frames)), axis=1)  # [B, F]
        count = ops.sum(ops.cast(valid, frames.dtype), axis=1)  # [B, 1]
        return total / ops.maximum(count, 1.0)

    def compute_output_shape(self, frames_shape, mask_shape=None):
        return (frames_shape[0], frames_shape[2])


@keras.saving.register_keras_serializable(package="yt8m_kd")
class FrameEncoderVideoModel(VideoHeadMixin, keras.Model):
    """Image backbone per frame -> NeXtVLAD or masked mean -> dropout -> hidden FC + BN -> context
    gating -> classifier.

    Args:
      config: a `ModelConfig` with `backbone` and `image_size` set, or its `dataclasses.asdict`.
        The backbone starts randomly initialised; `build_frame_encoder_model` (or
        `build_video_model`) also loads `config.backbone_weights`.
      **kwargs: base Model arguments.

    Call arguments:
      inputs: a dict with `frames` [B, T, image_size, image_size, 3] uint8 RGB (float in [0, 255]
        works too) and `num_frames` [B] int32 (frames past it are padding: never run through the
        backbone, never change the output).
      training: dropout and batch statistics on when True (the backbone's only when trainable).

    Returns:
      `{"logits": [B, C] float32, "repr": [B, H] float32}`.

    Example:

    >>> config = ModelConfig(backbone="mobilenet_v3_small", image_size=32, num_classes=5,
    ...                      cluster_size=4, groups=4, expansion=1, hidden_size=16,
    ...                      gating_reduction=4, classifier="softmax")
    >>> model = FrameEncoderVideoModel(config)
    >>> out = model({"frames": np.zeros((2, 4, 32, 32, 3), np.uint8),
    ...              "num_frames": np.array([2, 4], np.int32)})
    >>> out["logits"].shape, out["repr"].shape
    (TensorShape([2, 5]), TensorShape([2, 16]))
    """

    def __init__(self, config: ModelConfig | dict, **kwargs):
        kwargs.setdefault("name", "frame_encoder_video_model")
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = model_config_from_dict(config)
        check_frame_encoder_config(config)
        self.model_config = config

        # Named attributes, not a list: tf.train.Checkpoint follows attributes (see
        # NeXtVLADVideoModel).
        self.backbone = make_backbone(config.backbone, config.image_size)
        # Frozen: weights fixed and batch norms on their moving statistics (Keras' convention for a
        # non-trainable BatchNormalization); the backbone is also called in inference mode.
        self.backbone.trainable = config.trainable_backbone
        feature_size = int(self.backbone.output_shape[-1])
        if config.temporal_encoding:
            feature_size *= 2  # [f, f * tau], see temporal_features
        if config.pooling == "nextvlad":
            self.pooling = NeXtVLAD(
                feature_size=feature_size,
                cluster_size=config.cluster_size,
                groups=config.groups,
                expansion=config.expansion,
                name="nextvlad",
            )
        else:
            self.pooling = MaskedMeanPooling(name="mean_pooling")
        # The head of NeXtVLADVideoModel, layer for layer (same names, same `repr`).
        self.dropout = keras.layers.Dropout(config.drop_rate, name="dropout")
        self.hidden = keras.layers.Dense(config.hidden_size, use_bias=False, name="hidden")
        self.hidden_bn = GlobalBatchNormalization(name="hidden_bn")
        self.gating = ContextGating(config.gating_reduction, name="context_gating")
        self.classifier = make_classifier(config)

    @property
    def feature_size(self) -> int:
        """F, the width of the backbone's per-frame features."""
        return int(self.backbone.output_shape[-1])

    def encode_frames(self, frames, num_frames, training=False):
        """[B, T, S, S, 3] frames -> [B, T, F] float32 backbone features; zeros at padding.

        Only the valid frames go through the preprocessing and the backbone: gathered out of the
        [B*T] frames, then scattered back.
        """
        size = self.model_config.image_size
        frames = ops.convert_to_tensor(frames)
        expected = (size, size, 3)
        if len(frames.shape) != 5 or any(
            got is not None and got != want
            for got, want in zip(frames.shape[2:], expected, strict=True)
        ):
            raise ValueError(
                f"frames have shape {tuple(frames.shape)}, expected [B, T, {size}, {size}, 3] "
                f"(image_size={size})"
            )
        batch_size, max_frames = ops.shape(frames)[0], ops.shape(frames)[1]
        mask = tf.sequence_mask(ops.cast(num_frames, "int32"), maxlen=max_frames)  # [B, T]
        flat_frames = ops.reshape(frames, (-1, size, size, 3))  # [B*T, S, S, 3]
        flat_valid = ops.reshape(mask, (-1,))  # [B*T]
        # Keras layers fail on an empty batch, so a batch without a single valid frame runs one
        # black stand-in (its first frame) through the backbone, and its features are dropped.
        # With at least one valid frame, the backbone (and its batch norms) see exactly those.
        stand_in = ops.logical_and(
            ops.logical_not(ops.any(flat_valid)), ops.arange(ops.shape(flat_valid)[0]) == 0
        )
        positions = tf.where(ops.logical_or(flat_valid, stand_in))  # [N, 1] int64
        keep = tf.gather_nd(flat_valid, positions)  # [N], False only for a stand-in
        images = ops.cast(tf.gather_nd(flat_frames, positions), "float32")  # [N, S, S, 3], 0..255
        images = ops.where(keep[:, None, None, None], images, 0.0)
        images = get_backbone(self.model_config.backbone).preprocess(images)
        backbone_training = bool(training) and self.model_config.trainable_backbone
        features = self.backbone(images, training=backbone_training)  # [N, F]
        features = ops.where(keep[:, None], ops.cast(features, "float32"), 0.0)
        flat_features = tf.scatter_nd(
            positions,
            features,
            ops.cast(ops.stack([batch_size * max_frames, self.feature_size]), "int64"),
        )  # [B*T, F], zeros at padding
        return ops.reshape(flat_features, (batch_size, max_frames, self.feature_size))

    def call(self, inputs, training=False):
        num_frames = ops.cast(inputs["num_frames"], "int32")  # [B]
        features = self.encode_frames(inputs["frames"], num_frames, training=training)
        mask = tf.sequence_mask(num_frames, maxlen=ops.shape(features)[1])  # [B, T] bool
        if self.model_config.temporal_encoding:
            features = temporal_features(features, num_frames)  # [B, T, 2F]
        if self.model_config.pooling == "nextvlad":
            x = self.pooling(features, mask, training=training)  # [B, K*lambda*F/G]
        else:
            x = self.pooling(features, mask)  # [B, F]
        return self.video_head(x, training)


def build_frame_encoder_model(config: ModelConfig) -> FrameEncoderVideoModel:
    """The image model of `config`, built on a one-frame dummy batch, with its pretrained backbone
    weights (`config.backbone_weights`) loaded."""
    model = FrameEncoderVideoModel(config)
    size = config.image_size
    dummy = {
        "frames": np.zeros((1, 1, size, size, 3), np.uint8),
        "num_frames": np.array([1], np.int32),
    }
    model(dummy, training=False)
    load_backbone_weights(model.backbone, config.backbone, config.backbone_weights)
    return model


def count_frame_encoder_flops(config: ModelConfig, num_frames: int) -> int:
    """Forward FLOPs of an image model on one video of `num_frames` frames (multiply-add = 2).

    The backbone on every frame (`backbone_flops_per_frame`, profiled), the pooling (NeXtVLAD step
    by step as for frame features, or the masked mean's sum and divide) and the head
    (hidden FC, context gating, classifier), all as in `count_flops_per_video`.
    """
    check_frame_encoder_config(config)
    m = int(num_frames)
    frame_flops, feature_size = backbone_flops_per_frame(config.backbone, config.image_size)
    flops = m * frame_flops
    if config.pooling == "nextvlad":
        flops += nextvlad_flops(
            feature_size, config.cluster_size, config.groups, config.expansion, m
        )
        descriptor_size = config.cluster_size * config.expansion * feature_size // config.groups
    else:
        flops += m * feature_size + feature_size  # sum over frames, divide by the count
        descriptor_size = feature_size
    return int(flops + head_flops(config, descriptor_size))
