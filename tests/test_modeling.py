"""NeXtVLAD layer, classifiers, video model, presets and model_summary (docs/nextvlad.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from yt8m_kd.configs import ModelConfig
from yt8m_kd.flags import read_flagfile
from yt8m_kd.modeling import (
    ContextGating,
    Dequantize,
    LogisticClassifier,
    MixtureOfExpertsClassifier,
    NeXtVLAD,
    NeXtVLADVideoModel,
    build_video_model,
    count_flops_per_video,
)

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"

TINY = ModelConfig(
    feature_sizes=(16, 8),
    num_classes=7,
    cluster_size=8,
    groups=4,
    expansion=2,
    hidden_size=16,
    gating_reduction=4,
    drop_rate=0.5,
)
FEATURES = sum(TINY.feature_sizes)


def build_model_from_flagfile(path: str, **overrides):
    """The model of a models/ preset, flags overridden by name."""
    return build_video_model(read_flagfile(path, **overrides).model)


def _num_params(weights) -> int:
    return int(sum(np.prod(w.shape) for w in weights))


def _outputs(model, frames, num_frames):
    out = model({"frames": frames, "num_frames": np.asarray(num_frames, np.int32)}, training=False)
    return {k: v.numpy() for k, v in out.items()}


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(0)
    model = build_video_model(TINY)
    # Non-trivial batch-norm statistics, so that inference mode is not an identity.
    rng = np.random.default_rng(1)
    for layer in [*model.branches, model.hidden_bn, model.gating]:
        for w in layer.non_trainable_weights:
            low, high = (0.5, 2.0) if "variance" in w.path else (-0.5, 0.5)
            w.assign(rng.uniform(low, high, w.shape).astype("float32"))
    return model


def _videos(rng, num_frames, dtype):
    """A list of videos with exactly num_frames[i] frames each, no padding."""
    if dtype == np.uint8:
        return [rng.integers(0, 256, (n, FEATURES), dtype=np.uint8) for n in num_frames]
    return [rng.normal(size=(n, FEATURES)).astype(np.float32) for n in num_frames]


def _pad(videos, length, garbage):
    """Stack videos into [B, length, D], the frames past each video's end taken from garbage."""
    batch = garbage[: len(videos), :length].copy()
    for i, video in enumerate(videos):
        batch[i, : len(video)] = video
    return batch


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_padding_never_changes_the_output(tiny_model, dtype):
    rng = np.random.default_rng(0)
    num_frames = [3, 5, 1]
    videos = _videos(rng, num_frames, dtype)
    if dtype == np.uint8:
        garbage = rng.integers(0, 256, (3, 12, FEATURES), dtype=np.uint8)
    else:
        garbage = rng.normal(scale=1e3, size=(3, 12, FEATURES)).astype(np.float32)
        garbage[:, ::2, 0] = np.nan  # even NaN padding must not leak
        garbage[:, 1::2, 1] = np.inf

    padded_short = _outputs(tiny_model, _pad(videos, 5, garbage), num_frames)
    padded_long = _outputs(tiny_model, _pad(videos, 12, garbage[:, ::-1]), num_frames)
    for i, video in enumerate(videos):
        alone = _outputs(tiny_model, video[None], [len(video)])
        for key in ("logits", "repr"):
            np.testing.assert_allclose(padded_short[key][i], alone[key][0], atol=1e-5)
            np.testing.assert_allclose(padded_long[key][i], alone[key][0], atol=1e-5)
    assert padded_short["logits"].shape == (3, TINY.num_classes)
    assert padded_short["repr"].shape == (3, TINY.hidden_size)
    assert padded_short["logits"].dtype == np.float32
    assert np.all(np.isfinite(padded_long["logits"]))
    # A video without a single valid frame still gives finite outputs.
    empty = _outputs(tiny_model, garbage[:1, :4], [0])
    assert np.all(np.isfinite(empty["logits"])) and np.all(np.isfinite(empty["repr"]))
    # The three videos differ, so equal outputs above are not an accident of a constant model.
    assert np.abs(padded_short["logits"][0] - padded_short["logits"][1]).max() > 1e-3


def test_output_is_invariant_to_frame_order(tiny_model):
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, (2, 9, FEATURES), dtype=np.uint8)
    num_frames = [9, 6]
    shuffled = frames.copy()
    shuffled[0] = frames[0, rng.permutation(9)]
    shuffled[1, :6] = frames[1, rng.permutation(6)]
    before = _outputs(tiny_model, frames, num_frames)
    after = _outputs(tiny_model, shuffled, num_frames)
    np.testing.assert_allclose(after["logits"], before["logits"], atol=1e-5)
    np.testing.assert_allclose(after["repr"], before["repr"], atol=1e-5)


def test_nextvlad_training_mode_ignores_padding():
    # In training the assignment batch norm takes moments over valid frames only.
    keras.utils.set_random_seed(3)
    layer = NeXtVLAD(feature_size=8, cluster_size=4, groups=2, expansion=2)
    rng = np.random.default_rng(3)
    valid = rng.normal(size=(3, 4, 8)).astype(np.float32)
    lengths = np.array([4, 2, 3])
    short = np.concatenate([valid, rng.normal(size=(3, 2, 8)).astype(np.float32)], axis=1)
    long = np.concatenate([valid, 50 * rng.normal(size=(3, 7, 8)).astype(np.float32)], axis=1)
    for i, n in enumerate(lengths):
        short[i, n:] = long[i, n : short.shape[1]] = 100.0 + i
    mask_short = np.arange(short.shape[1])[None] < lengths[:, None]
    mask_long = np.arange(long.shape[1])[None] < lengths[:, None]
    out_short = layer(short, mask_short, training=True).numpy()
    out_long = layer(long, mask_long.astype(np.float32), training=True).numpy()
    assert out_short.shape == (3, 4 * 2 * 8 // 2)
    np.testing.assert_allclose(out_short, out_long, atol=1e-5)


def test_reference_model_size_matches_the_paper():
    model = build_video_model(ModelConfig())  # the defaults are the reference's best single model
    assert _num_params(model.trainable_weights) == 88_889_378
    assert _num_params(model.non_trainable_weights) == 80_896

    # The per-part breakdown of docs/nextvlad.md.
    video, audio = model.branches
    assert (video.feature_size, video.cluster_size, video.groups) == (1024, 128, 8)
    assert (audio.feature_size, audio.cluster_size, audio.groups) == (128, 64, 4)
    assert _num_params(video.trainable_weights) == 4_313_096
    assert _num_params(audio.trainable_weights) == 112_388
    assert _num_params(model.hidden.trainable_weights) == 75_497_472
    assert _num_params(model.hidden_bn.trainable_weights) == 4_096
    gating = model.gating
    assert _num_params(gating.squeeze.trainable_weights) == 524_288
    assert _num_params(gating.squeeze_bn.trainable_weights) == 512
    assert _num_params(gating.excite.trainable_weights) == 524_288
    dense = model.classifier.dense
    assert tuple(dense.kernel.shape) == (2048, 3862) and tuple(dense.bias.shape) == (3862,)


def test_config_round_trip_gives_identical_outputs(tiny_model):
    rng = np.random.default_rng(4)
    frames = rng.integers(0, 256, (2, 7, FEATURES), dtype=np.uint8)
    expected = _outputs(tiny_model, frames, [7, 4])

    clone = NeXtVLADVideoModel.from_config(tiny_model.get_config())
    assert clone.model_config == TINY
    clone(
        {"frames": frames[:1, :2], "num_frames": np.array([2], np.int32)}, training=False
    )  # build
    clone.set_weights(tiny_model.get_weights())
    got = _outputs(clone, frames, [7, 4])
    np.testing.assert_array_equal(got["logits"], expected["logits"])
    np.testing.assert_array_equal(got["repr"], expected["repr"])

    # Through Keras' own (JSON-able) serialization as well.
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(tiny_model))
    assert isinstance(revived, NeXtVLADVideoModel) and revived.model_config == TINY


@pytest.mark.parametrize(
    "layer",
    [
        NeXtVLAD(feature_size=16, cluster_size=8, groups=4, expansion=2, name="v"),
        ContextGating(reduction=4, name="g"),
        LogisticClassifier(num_classes=5, l2_penalty=1e-3, name="c"),
        MixtureOfExpertsClassifier(num_classes=5, num_mixtures=3, l2_penalty=1e-3, name="m"),
        Dequantize(name="d"),
    ],
)
def test_layer_config_round_trip(layer):
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config


def test_dequantize_all_256_values():
    values = np.arange(256, dtype=np.uint8)
    got = Dequantize()(values).numpy()
    assert got.dtype == np.float32
    expected = values.astype(np.float32) * np.float32(4.0 / 255.0) + np.float32(-1.9921875)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_allclose(got, values.astype(np.float64) * 4 / 255 - 1.9921875, atol=1e-6)
    assert got[0] == -1.9921875 and abs(got[255] - 2.0078125) < 1e-6
    floats = np.linspace(-2, 2, 9, dtype=np.float32)
    np.testing.assert_array_equal(Dequantize()(floats).numpy(), floats)  # float input: identity


def test_mixture_of_experts_probabilities():
    keras.utils.set_random_seed(5)
    classes, mixtures = 6, 3
    moe = MixtureOfExpertsClassifier(num_classes=classes, num_mixtures=mixtures, l2_penalty=0.0)
    h = np.random.default_rng(5).normal(size=(4, 10)).astype(np.float32)
    logits = moe(h).numpy()
    assert logits.shape == (4, classes)
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    assert np.all((p > 0) & (p < 1))

    # The starter code's mixture, by hand: softmax gates over m + 1 (a dummy expert predicting 0).
    gates = (h @ moe.gates.kernel.numpy()).reshape(4, classes, mixtures + 1)
    gates = np.exp(gates - gates.max(-1, keepdims=True))
    gates /= gates.sum(-1, keepdims=True)
    experts = (h @ moe.experts.kernel.numpy() + moe.experts.bias.numpy()).reshape(4, classes, -1)
    expected = (gates[..., :mixtures] / (1 + np.exp(-experts))).sum(-1)
    np.testing.assert_allclose(p, expected, atol=1e-5)
    # The model variant returns logits in float32 too.
    model = build_video_model(TINY.replace(classifier="moe", moe_num_mixtures=2))
    out = _outputs(model, np.zeros((2, 3, FEATURES), np.uint8), [3, 1])
    assert out["logits"].shape == (2, TINY.num_classes) and np.all(np.isfinite(out["logits"]))


def test_logistic_l2_follows_the_slim_convention():
    classifier = LogisticClassifier(num_classes=3, l2_penalty=0.1)
    classifier(np.ones((1, 4), np.float32))
    kernel = classifier.dense.kernel.numpy()
    (loss,) = classifier.losses
    np.testing.assert_allclose(float(loss), 0.1 * np.sum(kernel**2) / 2, rtol=1e-5)


def test_flops_match_the_reference():
    reference = ModelConfig()
    at_300 = count_flops_per_video(reference, 300)
    at_30 = count_flops_per_video(reference, 30)
    assert abs(at_300 - 2.9e9) / 2.9e9 < 0.10
    assert abs(at_30 - 0.46e9) / 0.46e9 < 0.10
    # The frame-dependent part is linear in frames: 300 frames cost ten times 30, past the fixed head.
    fixed = count_flops_per_video(reference, 0)
    assert at_300 - fixed == 10 * (at_30 - fixed)
    assert fixed > 2 * 36864 * 2048  # at least the hidden FC
    moe = count_flops_per_video(reference.replace(classifier="moe"), 300)
    assert moe > at_300


def test_build_model_from_tiny_presets():
    teacher = build_model_from_flagfile(str(MODELS / "tiny_teacher.flags"))
    student = build_model_from_flagfile(str(MODELS / "tiny_student_k6.flags"))
    assert teacher.model_config.k_frames == 0
    assert student.model_config.k_frames == 6
    assert student.model_config.frame_selection == "uniform"
    assert teacher.model_config.replace(k_frames=6) == student.model_config
    assert teacher.model_config.feature_sizes == (64, 16)
    frames = np.random.default_rng(6).integers(0, 256, (2, 6, 80), dtype=np.uint8)
    out = _outputs(student, frames, [6, 6])
    assert out["logits"].shape == (2, 32) and out["repr"].shape == (2, 64)
    assert _num_params(teacher.trainable_weights) == _num_params(student.trainable_weights)

    wider = build_model_from_flagfile(
        str(MODELS / "tiny_teacher.flags"), num_classes=10, classifier="moe"
    )
    assert wider.model_config.num_classes == 10
    assert _outputs(wider, frames, [6, 3])["logits"].shape == (2, 10)
    assert read_flagfile(str(MODELS / "teacher.flags")).model == ModelConfig(
        l2_penalty=1e-5, k_frames=0
    )
    assert read_flagfile(str(MODELS / "student_k30.flags")).model.k_frames == 30

    missing = str(MODELS / "no_such_model.flags")
    with pytest.raises(FileNotFoundError, match="no_such_model.flags"):
        build_model_from_flagfile(missing)


def test_model_summary_prints_the_reference_size():
    result = subprocess.run(
        [
            sys.executable,
            "launchers/model_summary.py",
            "--flagfile=models/nextvlad_reference.flags",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert "trainable_params=88889378" in lines
    assert "non_trainable_params=80896" in lines
    assert "frames=300" in lines
    gflops = next(float(s.split("=")[1]) for s in lines if s.startswith("gflops_per_video="))
    assert abs(gflops - 2.9) < 0.29
