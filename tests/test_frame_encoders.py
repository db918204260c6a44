"""Image-backbone video models (UCF101): shapes, preprocessing, padding, checkpoints, weights, FLOPs.

Every backbone is built with random weights (no download): 32x32 frames, a few frames per video and
a tiny head keep each model build to a second or two.
"""

from __future__ import annotations

import random

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from yt8m_kd import flags as yflags
from yt8m_kd.configs import ModelConfig
from yt8m_kd.flags import read_flagfile
from yt8m_kd.modeling import (
    BACKBONES,
    FrameEncoderVideoModel,
    MaskedMeanPooling,
    NeXtVLADVideoModel,
    build_video_model,
    count_flops_per_video,
    frame_encoders,
    load_backbone_weights,
    model_size,
)
from yt8m_kd.modeling.backbones import Backbone, backbone_flops_per_frame, make_backbone
from yt8m_kd.modeling.frame_encoders import temporal_features

SIZE = 32
TINY = ModelConfig(
    backbone="mobilenet_v3_small",
    image_size=SIZE,
    num_classes=5,
    cluster_size=4,
    groups=4,
    expansion=1,
    hidden_size=16,
    gating_reduction=4,
    drop_rate=0.5,
    classifier="softmax",
)
# Per-frame feature width of each backbone (include_top=False, average pooled).
FEATURE_SIZES = {
    "small_cnn": 128,
    "mobilenet_v3_small": 576,
    "mobilenet_v3_large": 960,
    "mobilenet_v2": 1280,
    "efficientnet_b0": 1280,
    "resnet50": 2048,
}
PREPROCESS_INPUT = {
    "small_cnn": lambda images: images / 127.5 - 1.0,  # [0, 255] -> [-1, 1]
    "mobilenet_v3_small": keras.applications.mobilenet_v3.preprocess_input,
    "mobilenet_v3_large": keras.applications.mobilenet_v3.preprocess_input,
    "mobilenet_v2": keras.applications.mobilenet_v2.preprocess_input,
    "efficientnet_b0": keras.applications.efficientnet.preprocess_input,
    "resnet50": keras.applications.resnet50.preprocess_input,
}


def build_model_from_flagfile(path: str, **overrides):
    """The model of a models/ preset, flags overridden by name."""
    return build_video_model(read_flagfile(path, **overrides).model)


def _images(rng, *shape):
    """uint8 frames of shape [*shape, S, S, 3], each a random colour plus noise: different frames
    give clearly different features (pure noise frames all look alike after average pooling)."""
    colours = rng.integers(0, 256, (*shape, 1, 1, 3))
    noise = rng.integers(-40, 41, (*shape, SIZE, SIZE, 3))
    return np.clip(colours + noise, 0, 255).astype(np.uint8)


def _outputs(model, frames, num_frames, training=False):
    batch = {"frames": frames, "num_frames": np.asarray(num_frames, np.int32)}
    return {k: v.numpy() for k, v in model(batch, training=training).items()}


def _randomize_statistics(weights, seed):
    """Non-trivial batch-norm (and normalization) statistics, so inference mode is no identity."""
    rng = np.random.default_rng(seed)
    for w in weights:
        if "variance" in w.path:
            w.assign(rng.uniform(0.5, 2.0, w.shape).astype("float32"))
        elif "mean" in w.path:
            w.assign(rng.uniform(-0.5, 0.5, w.shape).astype("float32"))


def _calibrate_backbone(backbone, seed):
    """Sets every backbone batch norm's moving statistics to those of one batch of frames.

    A randomly initialised CNN in inference mode (moving mean 0, variance 1) shrinks its features
    to about 1e-11 through its depth, and every video would look alike. One training-mode pass
    with momentum 0 makes inference mode normalise as training does.
    """
    norms = [x for x in backbone.layers if isinstance(x, keras.layers.BatchNormalization)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.momentum = 0.0
    backbone(_images(np.random.default_rng(seed), 16).astype(np.float32), training=True)
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum


def _build(config, seed=0):
    keras.utils.set_random_seed(seed)
    model = build_video_model(config)
    _calibrate_backbone(model.backbone, seed)
    backbone_ids = {id(w) for w in model.backbone.weights}
    _randomize_statistics(
        [w for w in model.non_trainable_weights if id(w) not in backbone_ids], seed
    )
    return model


@pytest.fixture(scope="module", params=["nextvlad", "mean"])
def tiny_model(request):
    return _build(TINY.replace(pooling=request.param))


def _pad(videos, length, garbage):
    """Stacks videos into [B, length, S, S, 3]; frames past each video's end come from garbage."""
    batch = garbage[: len(videos), :length].copy()
    for i, video in enumerate(videos):
        batch[i, : len(video)] = video
    return batch


# ----------------------------------------------------------------------------- shapes, preprocessing
@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_gives_the_batch_contract_and_its_own_preprocessing(name):
    model = _build(TINY.replace(backbone=name), seed=1)
    assert isinstance(model, FrameEncoderVideoModel)
    assert model.feature_size == FEATURE_SIZES[name]
    rng = np.random.default_rng(1)
    frames = _images(rng, 2, 3)
    out = _outputs(model, frames, [3, 2])
    assert out["logits"].shape == (2, TINY.num_classes) and out["logits"].dtype == np.float32
    assert out["repr"].shape == (2, TINY.hidden_size) and out["repr"].dtype == np.float32
    assert np.all(np.isfinite(out["logits"]))

    # uint8 frames go through Keras' own preprocess_input of the backbone's module (MobileNetV3 and
    # EfficientNet rescale inside the model; ResNet50 is "caffe": BGR minus the mean pixel;
    # MobileNetV2 maps to [-1, 1]); padding positions get zero features.
    features = model.encode_frames(frames, np.array([3, 2], np.int32)).numpy()
    assert features.shape == (2, 3, FEATURE_SIZES[name])
    valid = np.concatenate([frames[0], frames[1, :2]]).astype(np.float32)  # the 5 valid frames
    expected = model.backbone(PREPROCESS_INPUT[name](valid), training=False).numpy()
    tolerance = 1e-6 * np.abs(expected).max()
    np.testing.assert_allclose(features[0], expected[:3], atol=tolerance)
    np.testing.assert_allclose(features[1, :2], expected[3:], atol=tolerance)
    np.testing.assert_array_equal(features[1, 2], 0.0)
    # Float frames in [0, 255] are the same input as uint8.
    np.testing.assert_allclose(
        _outputs(model, frames.astype(np.float32), [3, 2])["logits"], out["logits"], atol=1e-5
    )


def test_resnet50_preprocessing_is_caffe():
    # What resnet50.preprocess_input means, by hand: RGB -> BGR, minus the ImageNet mean pixel.
    image = np.arange(12, dtype=np.float32).reshape(1, 2, 2, 3)
    got = BACKBONES["resnet50"].preprocess(tf.constant(image)).numpy()
    expected = image[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    identity = BACKBONES["mobilenet_v3_small"].preprocess(tf.constant(image)).numpy()
    np.testing.assert_array_equal(identity, image)  # MobileNetV3 rescales inside the model


# ----------------------------------------------------------------------------- padding and order
def test_padding_never_changes_the_output(tiny_model):
    rng = np.random.default_rng(0)
    num_frames = [3, 1, 4]
    videos = [_images(rng, n) for n in num_frames]
    garbage = _images(rng, 3, 7)
    padded_short = _outputs(tiny_model, _pad(videos, 4, garbage), num_frames)
    padded_long = _outputs(tiny_model, _pad(videos, 7, garbage[:, ::-1]), num_frames)
    # Float frames whose padding is NaN and inf: never run through the backbone, cannot leak.
    nan_garbage = np.full((3, 5, SIZE, SIZE, 3), np.nan, np.float32)
    nan_garbage[:, ::2] = np.inf
    with_nan = _outputs(
        tiny_model, _pad([v.astype(np.float32) for v in videos], 5, nan_garbage), num_frames
    )
    for i, video in enumerate(videos):
        alone = _outputs(tiny_model, video[None], [len(video)])
        for key in ("logits", "repr"):
            # Float32 sums over a different batch layout: equal to ~1e-6 relative (logits of
            # size ~12 differ by ~1e-5 on some CPUs).
            for padded in (padded_short, padded_long, with_nan):
                np.testing.assert_allclose(padded[key][i], alone[key][0], rtol=1e-5, atol=1e-5)
    # The videos differ, so equal outputs above are not those of a constant model.
    assert np.abs(padded_short["logits"][0] - padded_short["logits"][2]).max() > 1e-4
    # A video without a single valid frame (the backbone then sees an empty batch) stays finite.
    empty = _outputs(tiny_model, garbage[:1, :3], [0])
    assert np.all(np.isfinite(empty["logits"])) and np.all(np.isfinite(empty["repr"]))


def test_training_batch_statistics_ignore_padding():
    # The backbone runs on the valid frames only, so in training its batch norms see the same
    # frames whatever the padding (no dropout here, so training outputs are deterministic).
    model = _build(TINY.replace(drop_rate=0.0), seed=2)
    rng = np.random.default_rng(2)
    num_frames = [2, 4, 1]
    videos = [_images(rng, n) for n in num_frames]
    garbage = _images(rng, 3, 9)
    short = _outputs(model, _pad(videos, 4, garbage), num_frames, training=True)
    long = _outputs(model, _pad(videos, 9, 255 - garbage), num_frames, training=True)
    np.testing.assert_allclose(short["logits"], long["logits"], atol=1e-5)
    np.testing.assert_allclose(short["repr"], long["repr"], atol=1e-5)


def test_output_is_invariant_to_frame_order(tiny_model):
    rng = np.random.default_rng(3)
    frames = _images(rng, 2, 4)
    num_frames = [4, 3]
    shuffled = frames.copy()
    shuffled[0] = frames[0, [2, 0, 3, 1]]
    shuffled[1, :3] = frames[1, [1, 2, 0]]
    before = _outputs(tiny_model, frames, num_frames)
    after = _outputs(tiny_model, shuffled, num_frames)
    np.testing.assert_allclose(after["logits"], before["logits"], atol=1e-5)
    np.testing.assert_allclose(after["repr"], before["repr"], atol=1e-5)


def test_masked_mean_pooling():
    frames = np.arange(24, dtype=np.float32).reshape(2, 4, 3)
    frames[0, 2:] = np.nan  # padding
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)
    got = MaskedMeanPooling()(frames, mask).numpy()
    np.testing.assert_allclose(got, [frames[0, :2].mean(0), frames[1].mean(0)])
    assert np.all(MaskedMeanPooling()(frames, np.zeros((2, 4), bool)).numpy() == 0.0)
    layer = MaskedMeanPooling(name="p")
    assert MaskedMeanPooling.from_config(layer.get_config()).get_config() == layer.get_config()


# ----------------------------------------------------------------------------- config, checkpoints
def test_config_round_trip_gives_identical_outputs(tiny_model):
    rng = np.random.default_rng(4)
    frames = _images(rng, 2, 3)
    expected = _outputs(tiny_model, frames, [3, 2])
    clone = FrameEncoderVideoModel.from_config(tiny_model.get_config())
    assert clone.model_config == tiny_model.model_config
    clone({"frames": frames[:1, :1], "num_frames": np.array([1], np.int32)})  # build
    clone.set_weights(tiny_model.get_weights())
    got = _outputs(clone, frames, [3, 2])
    np.testing.assert_array_equal(got["logits"], expected["logits"])
    np.testing.assert_array_equal(got["repr"], expected["repr"])
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(tiny_model))
    assert isinstance(revived, FrameEncoderVideoModel)
    assert revived.model_config == tiny_model.model_config


def test_checkpoint_restores_every_variable(tmp_path):
    # EfficientNet also has an input Normalization layer, whose statistics must follow a restore.
    config = TINY.replace(backbone="efficientnet_b0")
    source = _build(config, seed=5)
    _randomize_statistics(source.non_trainable_weights, seed=5)
    path = tf.train.Checkpoint(model=source).save(str(tmp_path / "ckpt"))
    saved = [name for name, _ in tf.train.list_variables(path) if name.startswith("model/")]
    assert len(saved) == len(source.weights)

    target = _build(config, seed=6)  # different initial weights and statistics
    rng = np.random.default_rng(5)
    frames = _images(rng, 2, 3)
    assert not np.allclose(_outputs(target, frames, [3, 1])["logits"], 0.0)
    status = tf.train.Checkpoint(model=target).restore(path)
    status.expect_partial().assert_existing_objects_matched()
    for a, b in zip(source.weights, target.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    expected = _outputs(source, frames, [3, 1])
    got = _outputs(target, frames, [3, 1])
    np.testing.assert_array_equal(got["logits"], expected["logits"])
    np.testing.assert_array_equal(got["repr"], expected["repr"])


# ----------------------------------------------------------------------------- pretrained weights
def test_missing_weights_file_is_a_clear_error(tmp_path):
    missing = str(tmp_path / "no_such_backbone.weights.h5")
    with pytest.raises(FileNotFoundError, match="no_such_backbone.weights.h5"):
        build_video_model(TINY.replace(backbone_weights=missing))


def test_weights_file_of_another_backbone_is_a_clear_error(tmp_path):
    path = str(tmp_path / "resnet50.weights.h5")
    make_backbone("resnet50", SIZE).save_weights(path)
    with pytest.raises(ValueError, match="resnet50.weights.h5.*mobilenet_v3_small"):
        build_video_model(TINY.replace(backbone_weights=path))
    other = tmp_path / "weights.txt"
    other.write_text("not weights")
    with pytest.raises(ValueError, match="weights.txt"):
        build_video_model(TINY.replace(backbone_weights=str(other)))


def test_weights_file_of_the_same_backbone_loads(tmp_path):
    source = _build(TINY, seed=7)
    path = str(tmp_path / "mobilenet.weights.h5")
    source.backbone.save_weights(path)
    keras.utils.set_random_seed(8)
    loaded = build_video_model(TINY.replace(backbone_weights=path))
    keras.utils.set_random_seed(8)
    fresh = make_backbone(TINY.backbone, SIZE)  # what the loaded backbone was before loading
    for a, b in zip(source.backbone.weights, loaded.backbone.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    images = _images(np.random.default_rng(7), 3).astype(np.float32)
    expected = source.backbone(images, training=False).numpy()
    np.testing.assert_array_equal(loaded.backbone(images, training=False).numpy(), expected)
    assert not np.allclose(fresh(images, training=False).numpy(), expected)


def _imagenet_like_efficientnet(seed):
    """An EfficientNetB0 backbone with the statistics Keras' ImageNet file stores in its
    Normalization layer: the ImageNet mean and, in the variance slot, the standard deviations."""
    keras.utils.set_random_seed(seed)
    backbone = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=(SIZE, SIZE, 3), pooling="avg"
    )
    (norm,) = [x for x in backbone.layers if isinstance(x, keras.layers.Normalization)]
    norm.adapt_mean.assign([0.485, 0.456, 0.406])
    norm.adapt_variance.assign([0.229, 0.224, 0.225])
    norm.finalize_state()
    return backbone


def _check_imagenet_normalization(source, target):
    """target holds source's weights, with the standard deviations squared into variances."""
    for a, b in zip(source.weights, target.weights, strict=True):
        if a.path.endswith("variance") and "normalization" in a.path:
            np.testing.assert_allclose(b.numpy(), np.square([0.229, 0.224, 0.225]), rtol=1e-6)
        else:
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    # The input normalisation is then (x / 255 - mean) / std, as the ImageNet training used.
    (norm,) = [x for x in target.layers if isinstance(x, keras.layers.Normalization)]
    x = np.full((1, 1, 1, 3), 0.5, np.float32)
    np.testing.assert_allclose(
        norm(x).numpy().ravel(),
        (0.5 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]),
        rtol=1e-5,
    )


def test_legacy_h5_of_keras_imagenet_layout_loads_with_the_right_normalization(tmp_path):
    source = _imagenet_like_efficientnet(seed=9)
    path = str(tmp_path / "efficientnetb0_notop.h5")
    source.save(path)  # the legacy HDF5 layout of Keras' downloaded application weights
    keras.utils.set_random_seed(10)
    target = make_backbone("efficientnet_b0", SIZE)
    load_backbone_weights(target, "efficientnet_b0", path)
    _check_imagenet_normalization(source, target)


def test_imagenet_weights_come_from_the_keras_constructor(monkeypatch):
    # No download here: the constructor is replaced by one that returns "pretrained" weights.
    real = BACKBONES["efficientnet_b0"]
    pretrained = {}

    def constructor(**kwargs):
        if kwargs["weights"] != "imagenet":
            return real.constructor(**kwargs)
        pretrained["model"] = _imagenet_like_efficientnet(seed=11)
        return pretrained["model"]

    keras.utils.set_random_seed(12)
    target = make_backbone("efficientnet_b0", SIZE)
    monkeypatch.setitem(BACKBONES, "efficientnet_b0", Backbone(constructor, real.preprocess))
    load_backbone_weights(target, "efficientnet_b0", "imagenet")
    _check_imagenet_normalization(pretrained["model"], target)


# ----------------------------------------------------------------------------- training
def _loss(model, batch, labels, training=True):
    logits = model(batch, training=training)["logits"]
    return tf.reduce_mean(
        keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    )


def _train(model, batch, labels, steps):
    optimizer = keras.optimizers.Adam(learning_rate=3e-3)
    losses = []
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = _loss(model, batch, labels)
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        losses.append(float(loss))
    return losses


@pytest.mark.parametrize("pooling", ["nextvlad", "mean"])
def test_both_poolings_train(pooling):
    model = _build(TINY.replace(pooling=pooling, drop_rate=0.0), seed=13)
    rng = np.random.default_rng(13)
    batch = {"frames": _images(rng, 4, 3), "num_frames": np.array([3, 2, 3, 1], np.int32)}
    labels = np.array([0, 1, 2, 3])
    first_conv = model.backbone.trainable_weights[0].numpy().copy()
    losses = _train(model, batch, labels, steps=4)
    assert losses[-1] < 0.7 * losses[0], losses
    assert np.abs(model.backbone.trainable_weights[0].numpy() - first_conv).max() > 0  # trained


def test_frozen_backbone_keeps_its_weights_and_statistics():
    model = _build(TINY.replace(trainable_backbone=False, drop_rate=0.0), seed=14)
    backbone_ids = {id(v) for v in model.backbone.weights}
    assert not backbone_ids & {id(v) for v in model.trainable_weights}
    before = [w.numpy().copy() for w in model.backbone.weights]
    rng = np.random.default_rng(14)
    batch = {"frames": _images(rng, 4, 2), "num_frames": np.array([2, 2, 1, 2], np.int32)}
    losses = _train(model, batch, np.array([0, 1, 2, 3]), steps=3)
    assert losses[-1] < losses[0]
    for a, w in zip(before, model.backbone.weights, strict=True):
        np.testing.assert_array_equal(a, w.numpy(), err_msg=w.path)


@pytest.mark.parametrize("training", [False, True])
def test_xla_matches_eager_with_padding(training):
    # Under XLA the gathered valid frames are padded to all B*T frames; in training the backbone's
    # batch statistics must still come from the valid frames only (Keras' synchronised moments
    # count the padding there: BackboneBatchNormalization).
    model = _build(TINY.replace(drop_rate=0.0), seed=15)
    rng = np.random.default_rng(15)
    frames, num_frames = _images(rng, 3, 3), np.array([3, 1, 2], np.int32)
    compiled = tf.function(
        lambda f, n: model({"frames": f, "num_frames": n}, training=training), jit_compile=True
    )
    got = compiled(frames, num_frames)["logits"].numpy()
    expected = _outputs(model, frames, num_frames, training=training)["logits"]
    np.testing.assert_allclose(got, expected, atol=1e-4)


MIRRORED_VS_ONE_DEVICE = """
import json
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras

from yt8m_kd.configs import ModelConfig
from yt8m_kd.modeling import build_video_model

config = ModelConfig(backbone="mobilenet_v3_small", image_size=32, num_classes=5, cluster_size=4,
                     groups=4, expansion=1, hidden_size=16, gating_reduction=4, drop_rate=0.0,
                     classifier="softmax")
rng = np.random.default_rng(0)
frames = np.clip(rng.integers(0, 256, (4, 3, 1, 1, 3)) + rng.integers(-40, 41, (4, 3, 32, 32, 3)),
                 0, 255).astype(np.uint8)
batch = {"frames": frames, "num_frames": np.array([3, 1, 2, 3], np.int32),
         "labels": np.array([0, 1, 2, 3], np.int32)}

def train(strategy):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_video_model(config)
        optimizer = keras.optimizers.SGD(0.1)
        optimizer.build(model.trainable_variables)
    def step(batch):
        with tf.GradientTape() as tape:
            logits = model(batch, training=True)["logits"]
            per_sample = tf.nn.sparse_softmax_cross_entropy_with_logits(batch["labels"], logits)
            loss = tf.nn.compute_average_loss(per_sample, global_batch_size=4)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss
    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(batch).batch(4))
    run = tf.function(lambda b: strategy.reduce("SUM", strategy.run(step, (b,)), axis=None))
    for b in dataset:
        loss = run(b)
    return float(loss), [w.numpy() for w in model.weights]

one_loss, one = train(tf.distribute.OneDeviceStrategy("/cpu:0"))
two_loss, two = train(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
print(json.dumps({"loss": [one_loss, two_loss],
                  "max_weight_difference": max(float(np.abs(a - b).max()) for a, b in zip(one, two))}))
"""


@pytest.mark.slow
def test_two_replicas_train_like_one_device():
    # Two replicas of 2 videos each (6 and 3 valid frames) vs one device on the 4 videos: the
    # backbone's batch norms all-reduce their moments, so both train to the same weights.
    import json
    import subprocess
    import sys
    from pathlib import Path

    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_VS_ONE_DEVICE],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(report["loss"][0], report["loss"][1], rtol=1e-5)
    assert report["max_weight_difference"] < 1e-4


# ----------------------------------------------------------------------------- FLOPs and size
def test_flops_per_video():
    # MobileNetV3-Small at 224x224: 56 M multiply-adds (Howard et al. 2019), about 0.11 GFLOP.
    per_frame, features = backbone_flops_per_frame("mobilenet_v3_small", 224)
    assert features == 576
    assert 0.10e9 < per_frame < 0.13e9
    config = TINY.replace(image_size=112, cluster_size=64, groups=8, expansion=2, hidden_size=256)
    at_0, at_8, at_16 = (count_flops_per_video(config, m) for m in (0, 8, 16))
    assert at_16 - at_0 == 2 * (at_8 - at_0)  # linear in frames past the fixed head
    per_frame_112, _ = backbone_flops_per_frame("mobilenet_v3_small", 112)
    assert at_8 - at_0 > 8 * per_frame_112
    assert count_flops_per_video(config.replace(pooling="mean"), 8) < at_8
    assert count_flops_per_video(config.replace(backbone="resnet50"), 8) > 10 * at_8


def test_flop_count_leaves_the_random_state_alone():
    backbone_flops_per_frame.cache_clear()
    state = random.getstate()
    backbone_flops_per_frame("mobilenet_v3_small", SIZE)
    assert random.getstate() == state


def test_model_size_of_an_image_model(tiny_model):
    size = model_size(tiny_model, tiny_model.model_config.replace(k_frames=4), max_frames=16)
    assert size["frames"] == 4
    assert size["trainable_params"] == sum(
        int(np.prod(w.shape)) for w in tiny_model.trainable_weights
    )
    assert size["gflops_per_video"] == count_flops_per_video(tiny_model.model_config, 4) / 1e9


# ----------------------------------------------------------------------------- config and flags
@pytest.mark.parametrize(
    "change, message",
    [
        ({"backbone": "vgg16"}, "unknown backbone"),
        ({"image_size": 0}, "image_size=0"),
        ({"pooling": "max"}, "unknown pooling"),
        ({"classifier": "svm"}, "unknown classifier"),
    ],
)
def test_bad_config_is_a_clear_error(change, message):
    with pytest.raises(ValueError, match=message):
        FrameEncoderVideoModel(TINY.replace(**change))


def test_defaults_keep_frame_feature_models():
    assert ModelConfig().backbone == "" and ModelConfig().pooling == "nextvlad"
    config = ModelConfig(feature_sizes=(8,), num_classes=3, cluster_size=4, groups=2,
                         hidden_size=8, gating_reduction=2)  # fmt: skip
    assert isinstance(build_video_model(config), NeXtVLADVideoModel)


def test_flags_fill_the_image_fields(tmp_path):
    fv = flags.FlagValues()
    yflags.define_all_flags(fv)
    fv(["prog"])
    assert yflags.run_config_from_flags(fv).model == ModelConfig()
    fv(
        [
            "prog",
            "--backbone=resnet50",
            "--image_size=112",
            "--backbone_weights=/data/resnet50_notop.h5",
            "--pooling=mean",
            "--notrainable_backbone",
            "--classifier=softmax",
        ]
    )
    config = yflags.run_config_from_flags(fv).model
    assert (config.backbone, config.image_size, config.backbone_weights) == (
        "resnet50",
        112,
        "/data/resnet50_notop.h5",
    )
    assert (config.pooling, config.trainable_backbone, config.classifier) == (
        "mean",
        False,
        "softmax",
    )

    flagfile = tmp_path / "tiny_ucf101.flags"
    flagfile.write_text(
        "\n".join(
            [
                "--backbone=mobilenet_v3_small",
                f"--image_size={SIZE}",
                "--num_classes=5",
                "--cluster_size=4",
                "--groups=4",
                "--expansion=1",
                "--hidden_size=16",
                "--gating_reduction=4",
                "--classifier=softmax",
            ]
        )
    )
    model = build_model_from_flagfile(str(flagfile))
    assert isinstance(model, FrameEncoderVideoModel)
    assert model.model_config == TINY
    assert frame_encoders.POOLINGS == ("nextvlad", "mean")


def test_temporal_encoding_tells_a_clip_from_the_clip_played_backwards():
    config = TINY.replace(backbone="small_cnn", temporal_encoding=True)
    model = _build(config, seed=2)
    rng = np.random.default_rng(2)
    frames = _images(rng, 1, 4)
    forward = _outputs(model, frames, [3])["logits"]
    backward = _outputs(model, frames[:, [2, 1, 0, 3]], [3])["logits"]  # valid frames reversed
    assert np.abs(forward - backward).max() > 1e-4
    # Still blind to padding: garbage after the 3 valid frames changes nothing.
    garbage = frames.copy()
    garbage[:, 3] = 255
    np.testing.assert_allclose(_outputs(model, garbage, [3])["logits"], forward, atol=1e-5)


def test_temporal_features_by_hand():
    features = np.ones((1, 4, 2), np.float32)
    out = np.asarray(temporal_features(features, np.array([3], np.int32)))
    # tau = 2t / (n - 1) - 1 over the n = 3 valid frames: -1, 0, 1; 0 at padding.
    np.testing.assert_allclose(out[0, :, 2], [-1.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(out[0, :, :2], features[0])
    one = np.asarray(temporal_features(features, np.array([1], np.int32)))
    np.testing.assert_allclose(one[0, :, 2], 0.0)
