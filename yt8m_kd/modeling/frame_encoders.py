"""Image-backbone video models (UCF101): a keras.applications CNN on every frame, then the video head.

`frames` [B, T, H, W, 3] uint8 -> the backbone's own preprocessing -> CNN (include_top=False, average
pooled) on the valid frames only -> [B, T, F] -> NeXtVLAD or a masked mean over frames -> dropout ->
hidden FC + BN -> context gating (`repr`) -> classifier (`logits`): the head of the NeXtVLAD video
model (reference/nextvlad.md), so teacher and student differ only in their `ModelConfig`s.

Padding frames never reach the backbone: the valid frames are gathered out of the [B*T] frames, run
through the CNN and scattered back, padding positions getting zero features, which the pooling then
masks out. So padding changes neither the output nor, in training, the backbone's batch-norm
statistics (the batch norms see exactly the valid frames of the batch, also under XLA and summed
over replicas: `BackboneBatchNormalization`).
"""

from __future__ import annotations

import dataclasses
import functools
import random
import warnings
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from yt8m_kd.configs import BACKBONES as BACKBONE_NAMES
from yt8m_kd.configs import POOLINGS, ModelConfig
from yt8m_kd.modeling.classifiers import ContextGating
from yt8m_kd.modeling.nextvlad import NeXtVLAD
from yt8m_kd.modeling.normalization import GlobalBatchNormalization
from yt8m_kd.modeling.video_models import (
    VideoHeadMixin,
    _head_flops,
    _model_config_from_dict,
    _nextvlad_flops,
    make_classifier,
)

# The smallest input keras.applications CNNs accept (their `obtain_input_shape` minimum).
MIN_IMAGE_SIZE = 32


@dataclasses.dataclass(frozen=True)
class Backbone:
    """A keras.applications CNN and the preprocessing its inputs need.

    Attributes:
      constructor: the keras.applications function (include_top, weights, input_shape, pooling,
        name arguments).
      preprocess: float RGB images in [0, 255] -> what the constructor's model expects; its Keras
        module's own `preprocess_input`, so the semantics are Keras'. MobileNetV3 and EfficientNet
        rescale inside the model (their `preprocess_input` is the identity and they take 0..255);
        ResNet50 needs "caffe" preprocessing outside (RGB -> BGR, minus the ImageNet mean pixel);
        MobileNetV2 needs 0..255 -> [-1, 1].
    """

    constructor: Callable[..., keras.Model]
    preprocess: Callable


def small_cnn(
    include_top: bool = False,
    weights: str | None = None,
    input_shape: tuple[int, int, int] = (64, 64, 3),
    pooling: str = "avg",
    name: str = "small_cnn",
) -> keras.Model:
    """Four 3x3 conv-BN-ReLU blocks (16, 32, 64, 128 channels, stride 2) and global average
    pooling: a backbone small enough to train from scratch on the synthetic UCF101 set in
    minutes on a CPU (tests, the demo). Same arguments as a keras.applications constructor; it
    has no top and no pretrained weights."""
    if include_top or weights not in (None, "", "none") or pooling != "avg":
        raise ValueError("small_cnn has no top, no pretrained weights and only average pooling")
    images = keras.Input(input_shape, name="images")
    x = images
    for i, channels in enumerate((16, 32, 64, 128)):
        x = keras.layers.Conv2D(
            channels, 3, strides=2, padding="same", use_bias=False, name=f"conv{i}"
        )(x)
        # momentum 0.9: the moving statistics settle within a few hundred steps (Keras' 0.99 and
        # MobileNet's 0.999 leave evaluation on the initial statistics in a short run).
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    features = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(images, features, name=name)


def _scale_to_unit(images):
    """[0, 255] -> [-1, 1]."""
    return images / 127.5 - 1.0


_apps = keras.applications
BACKBONES: dict[str, Backbone] = {
    "small_cnn": Backbone(small_cnn, _scale_to_unit),
    "mobilenet_v3_small": Backbone(_apps.MobileNetV3Small, _apps.mobilenet_v3.preprocess_input),
    "mobilenet_v3_large": Backbone(_apps.MobileNetV3Large, _apps.mobilenet_v3.preprocess_input),
    "mobilenet_v2": Backbone(_apps.MobileNetV2, _apps.mobilenet_v2.preprocess_input),
    "efficientnet_b0": Backbone(_apps.EfficientNetB0, _apps.efficientnet.preprocess_input),
    "resnet50": Backbone(_apps.ResNet50, _apps.resnet50.preprocess_input),
}
# The flags offer the names of yt8m_kd.configs; every one of them must be built here.
assert tuple(BACKBONES) == BACKBONE_NAMES, (tuple(BACKBONES), BACKBONE_NAMES)

# Keras' ImageNet EfficientNet files store the ImageNet standard deviations where the Normalization
# layer expects variances, and Keras compensates with an extra Rescaling layer that it adds only for
# weights="imagenet" (tensorflow/tensorflow issue 49930; keras-team/keras issue 16392 shows these
# values in the layer). We build every backbone the same way and square those values instead.
_IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)


def _backbone(name: str) -> Backbone:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r} (one of {', '.join(BACKBONES)})")
    return BACKBONES[name]


def check_frame_encoder_config(config: ModelConfig) -> None:
    """Raises ValueError for an image-model config that cannot be built, saying which field."""
    _backbone(config.backbone)
    if config.image_size < MIN_IMAGE_SIZE:
        raise ValueError(
            f"image_size={config.image_size}: backbone {config.backbone!r} needs the frame size, "
            f"at least {MIN_IMAGE_SIZE}"
        )
    if config.pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {config.pooling!r} (one of {', '.join(POOLINGS)})")


@keras.saving.register_keras_serializable(package="yt8m_kd")
class VariableNormalization(keras.layers.Normalization):
    """keras.layers.Normalization that reads its mean and variance variables at every call.

    The Keras layer copies its variables into constant tensors once (`finalize_state`), when it is
    built or loaded through Keras; a tf.train.Checkpoint restore or `set_weights` then leaves it
    normalising with the old values. EfficientNet's input normalisation is such a layer, so the
    backbones here use this one instead: same variables, same arithmetic, always current.

    Args:
      **kwargs: Normalization arguments, without `mean`/`variance` (the statistics are variables)
        and without `invert`.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.input_mean is not None or self.invert:
            raise ValueError("VariableNormalization takes neither fixed mean/variance nor invert")

    def finalize_state(self):
        pass  # nothing to copy: call reads the variables

    def call(self, inputs):
        inputs = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        mean = ops.reshape(ops.cast(self.adapt_mean, self.compute_dtype), self._broadcast_shape)
        variance = ops.reshape(
            ops.cast(self.adapt_variance, self.compute_dtype), self._broadcast_shape
        )
        return (inputs - mean) / ops.maximum(ops.sqrt(variance), keras.backend.epsilon())


@keras.saving.register_keras_serializable(package="yt8m_kd")
class BackboneBatchNormalization(keras.layers.BatchNormalization):
    """The backbone's BatchNormalization: synchronised across replicas, and right under XLA.

    Its batch is the valid frames gathered out of a padded video batch, a tensor whose size
    depends on the data. XLA pads such a tensor to its bound (all B*T frames) and tracks the real
    size; Keras' synchronised moments count the batch with `ones_like`, which then counts the
    padding too (and plain moments are not synchronised: N replicas would not train like one
    device, see GlobalBatchNormalization). So here the count comes from `tf.shape`, which XLA
    gives as the real size, and sums of x and x^2 and the count are all-reduced over replicas.

    Args:
      **kwargs: BatchNormalization arguments; `synchronized` is always True.
    """

    def __init__(self, **kwargs):
        kwargs["synchronized"] = True
        super().__init__(**kwargs)

    def _moments(self, inputs, mask):
        if mask is not None:
            return super()._moments(inputs, mask)
        axes = self._reduction_axes
        count = ops.prod(ops.take(ops.shape(inputs), axes))  # XLA: the real, unpadded size
        local = [
            ops.sum(inputs, axes),
            ops.sum(ops.square(inputs), axes),
            ops.cast(count, inputs.dtype),
        ]
        context = tf.distribute.get_replica_context()
        if context is not None:
            local = context.all_reduce(tf.distribute.ReduceOp.SUM, local)
        total, squared_total, count = local
        mean = tf.math.divide_no_nan(total, count)
        variance = ops.maximum(tf.math.divide_no_nan(squared_total, count) - ops.square(mean), 0.0)
        return mean, variance


def _backbone_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
    """clone_model's clone function: Normalization -> VariableNormalization, BatchNormalization ->
    BackboneBatchNormalization, every other layer a fresh copy as Keras makes it."""
    config = layer.get_config()
    if type(layer) is keras.layers.Normalization:
        return VariableNormalization.from_config(config)
    if type(layer) is keras.layers.BatchNormalization:
        return BackboneBatchNormalization.from_config(config)
    return layer.__class__.from_config(config)


def make_backbone(name: str, image_size: int) -> keras.Model:
    """The keras.applications CNN `name`, randomly initialised, include_top=False, average pooled.

    [N, image_size, image_size, 3] preprocessed images -> [N, F]. Its batch norms are
    `BackboneBatchNormalization` (synchronised across replicas like the head's, right under XLA),
    its Normalization layers (EfficientNet) `VariableNormalization`. Same layers, names and
    variables as Keras' model otherwise. Pretrained weights: `load_backbone_weights`.
    """
    model = _backbone(name).constructor(
        include_top=False,
        weights=None,
        input_shape=(image_size, image_size, 3),
        pooling="avg",
        name="backbone",
    )
    return keras.models.clone_model(model, clone_function=_backbone_layer)


def load_backbone_weights(backbone: keras.Model, name: str, weights: str) -> None:
    """Loads pretrained weights into a `make_backbone(name, ...)` model.

    Args:
      backbone: the model to load into.
      name: its BACKBONES name.
      weights: "" or "none": nothing to load (random init). "imagenet": the Keras download (needs
        internet the first time; Keras caches it in ~/.keras/models). Otherwise a local file:
        `.weights.h5` or `.keras` (Keras 3, e.g. `backbone.save_weights(...)` of another model of
        the same backbone), loaded by structure; or a legacy `.h5` such as the `*_notop.h5` files
        Keras downloads, loaded layer by layer in order, as keras.applications loads them
        (by-name loading would miss EfficientNet's auto-named Normalization layer).
        Loading is strict: a file that does not fit every backbone variable is an error, not a
        partial load that silently leaves random layers (so no skip_mismatch).

    Raises:
      FileNotFoundError: the file does not exist (the message names it).
      ValueError: the file does not fit this backbone (the message names it and the backbone).
    """
    if weights.lower() in ("", "none"):
        return
    if weights == "imagenet":
        # Build Keras' own pretrained model and copy its variables: the architecture stays the one
        # of make_backbone (no extra Rescaling layer), so checkpoints fit either way.
        pretrained = _backbone(name).constructor(
            include_top=False,
            weights="imagenet",
            input_shape=tuple(backbone.input_shape[1:]),
            pooling="avg",
        )
        backbone.set_weights(pretrained.get_weights())
    else:
        _load_weights_file(backbone, name, weights)
    _fix_imagenet_normalization(backbone)


def _load_weights_file(backbone: keras.Model, name: str, path: str) -> None:
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"backbone weights file not found: {path}")
    if not path.endswith((".weights.h5", ".keras", ".h5", ".hdf5")):
        raise ValueError(
            f"backbone weights file {path}: unknown format (expected .weights.h5, .keras or a "
            "legacy .h5)"
        )
    try:
        with warnings.catch_warnings():
            # Keras 3 warns about every nested container of a functional model that the file
            # holds no group for; the weights themselves are loaded (or it raises).
            warnings.filterwarnings("ignore", message="Skipping nested container")
            backbone.load_weights(path)
    except (ValueError, KeyError, OSError) as e:
        raise ValueError(
            f"backbone weights file {path} does not fit backbone {name!r} "
            f"(input {backbone.input_shape[1:]}): {e}"
        ) from e


def _fix_imagenet_normalization(backbone: keras.Model) -> None:
    """Squares Keras' ImageNet EfficientNet standard deviations into variances (see above)."""
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.Normalization):
            variance = layer.adapt_variance.numpy()
            if np.allclose(variance, _IMAGENET_STDDEV_RGB, atol=1e-4):
                layer.adapt_variance.assign(np.square(variance))


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
            config = _model_config_from_dict(config)
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
        images = _backbone(self.model_config.backbone).preprocess(images)
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


@functools.cache
def backbone_flops_per_frame(name: str, image_size: int) -> tuple[int, int]:
    """(forward FLOPs of one frame through preprocessing + backbone, feature size F).

    Counted by TensorFlow's profiler (`float_operation`) on the graph of one [1, S, S, 3] frame in
    inference mode: ops with registered FLOP statistics (convolutions and matmuls as 2 FLOPs per
    multiply-add, bias adds, batch norms, elementwise arithmetic); activations such as ReLU are not
    counted. Cached per (backbone, image size); the throwaway backbone leaves Python's random state
    (which Keras draws initializer seeds from) as it was, so counting never shifts a later model's
    initial weights.
    """
    spec = _backbone(name)
    state = random.getstate()
    try:
        backbone = spec.constructor(
            include_top=False, weights=None, input_shape=(image_size, image_size, 3), pooling="avg"
        )
    finally:
        random.setstate(state)
    frame = tf.TensorSpec((1, image_size, image_size, 3), tf.float32)
    graph = (
        tf.function(lambda x: backbone(spec.preprocess(x), training=False))
        .get_concrete_function(frame)
        .graph
    )
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    flops = tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops
    return int(flops), int(backbone.output_shape[-1])


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
        flops += _nextvlad_flops(
            feature_size, config.cluster_size, config.groups, config.expansion, m
        )
        descriptor_size = config.cluster_size * config.expansion * feature_size // config.groups
    else:
        flops += m * feature_size + feature_size  # sum over frames, divide by the count
        descriptor_size = feature_size
    return int(flops + _head_flops(config, descriptor_size))
