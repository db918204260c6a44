"""The image backbones of the image video models: a registry of keras.applications CNNs (and a small
CNN for tests and the demo), each with its own preprocessing, built the same way whatever its
pretrained weights, the loading of those weights, and a backbone's profiled cost per frame.

`make_backbone` returns Keras' architecture with two layer swaps, so that padding-free batches train
right under XLA and across replicas (`BackboneBatchNormalization`) and restored input statistics are
used (`VariableNormalization`); `load_backbone_weights` loads ImageNet or a local file, strictly.
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


def get_backbone(name: str) -> Backbone:
    """The BACKBONES entry `name`; ValueError naming the choices for an unknown one."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r} (one of {', '.join(BACKBONES)})")
    return BACKBONES[name]


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
    model = get_backbone(name).constructor(
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
        pretrained = get_backbone(name).constructor(
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
    spec = get_backbone(name)
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
