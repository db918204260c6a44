"""SAKD building blocks against hand-computed values: schedules, drop/shuffle, strength, loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from yt8m_kd.configs import SCHEDULES, SELECTION_METHODS, SAKDConfig
from yt8m_kd.data import sampling, yt8m_records
from yt8m_kd.distill import sakd

SENTINEL = -7.0  # padding value that no interruption may touch
SEED = tf.constant([3, 14], dtype=tf.int32)
OTHER_SEED = tf.constant([27, 18], dtype=tf.int32)


def _batch(num_frames, length=12, dim=3):
    """frames [B, T, D] with distinct non-zero valid frames (frame t of video b holds
    100 * b + t + 1 in every feature) and SENTINEL padding."""
    frames = np.full((len(num_frames), length, dim), SENTINEL, np.float32)
    for b, n in enumerate(num_frames):
        frames[b, :n] = (100 * b + np.arange(1, n + 1, dtype=np.float32))[:, None]
    return tf.constant(frames), tf.constant(num_frames, tf.int32)


# ------------------------------------------------------------------------------- schedules
@pytest.mark.parametrize(
    "schedule,epoch,expected",
    [
        # N = 10. polynomial 1 - (1 - n/N)^0.9; linear n/N; cosine 0.5 (1 - cos(pi n / N)).
        ("polynomial", 5, 1 - 0.5**0.9),  # 0.46411...
        ("polynomial", 2, 1 - 0.8**0.9),  # 0.18181...
        ("linear", 5, 0.5),
        ("linear", 3, 0.3),
        ("cosine", 5, 0.5),
        ("cosine", 2.5, 0.5 * (1 - math.sqrt(0.5))),  # cos(pi/4): 0.14644...
    ],
)
def test_schedule_values(schedule, epoch, expected):
    assert sakd.interruption_rate(epoch, 10, schedule) == pytest.approx(expected, abs=1e-12)


def test_schedule_hand_numbers_and_ends():
    assert sakd.interruption_rate(5, 10) == pytest.approx(
        0.4641132687, abs=1e-9
    )  # 1 - exp(0.9 ln 0.5)
    for schedule in SCHEDULES:
        assert sakd.interruption_rate(0, 10, schedule) == pytest.approx(0.0, abs=1e-12)
        assert sakd.interruption_rate(10, 10, schedule) == pytest.approx(1.0, abs=1e-12)
        # n is clipped to [0, N].
        assert sakd.interruption_rate(-3, 10, schedule) == pytest.approx(0.0, abs=1e-12)
        assert sakd.interruption_rate(15, 10, schedule) == pytest.approx(1.0, abs=1e-12)
    assert isinstance(sakd.interruption_rate(5, 10), float)


def test_schedule_accepts_tensors():
    got = sakd.interruption_rate(tf.constant(5), 10, "polynomial")
    assert float(got) == pytest.approx(1 - 0.5**0.9, abs=1e-6)
    got = sakd.interruption_rate(tf.constant(5.0), tf.constant(10.0), "cosine")
    assert float(got) == pytest.approx(0.5, abs=1e-6)


def test_schedule_rejects_unknown_and_bad_epochs():
    with pytest.raises(ValueError, match="polynomial, linear, cosine"):
        sakd.interruption_rate(1, 10, "step")
    with pytest.raises(ValueError, match="num_epochs"):
        sakd.interruption_rate(1, 0)


# ------------------------------------------------------------------------------------ drop
@pytest.mark.parametrize(
    "beta,expected",
    [
        # num_frames = [10, 7, 3, 12, 0]: floor(beta * n) per video.
        (0.3, [3, 2, 0, 3, 0]),
        (0.45, [4, 3, 1, 5, 0]),
        (0.29, [2, 2, 0, 3, 0]),
        (0.0, [0, 0, 0, 0, 0]),
        (1.0, [10, 7, 3, 12, 0]),
    ],
)
def test_drop_zeroes_exactly_floor_beta_n_valid_frames(beta, expected):
    num_frames = [10, 7, 3, 12, 0]
    frames, n = _batch(num_frames)
    out = sakd.drop_frames(frames, n, beta, SEED).numpy()
    before = frames.numpy()
    for b, valid in enumerate(num_frames):
        zeroed = np.all(out[b] == 0.0, axis=-1)
        assert zeroed[:valid].sum() == expected[b]
        assert not zeroed[valid:].any()
        np.testing.assert_array_equal(out[b, valid:], SENTINEL)  # padding untouched
        kept = ~zeroed
        np.testing.assert_array_equal(out[b][kept], before[b][kept])  # others untouched


def test_drop_floor_is_exact_for_decimal_betas():
    # 0.29 * 100 = 28.999999999999996 in float64: still 29 frames.
    frames, n = _batch([100], length=100, dim=1)
    out = sakd.drop_frames(frames, n, 0.29, SEED).numpy()
    assert np.sum(out == 0.0) == 29
    out = sakd.drop_frames(frames, n, tf.constant(0.29, tf.float64), SEED).numpy()
    assert np.sum(out == 0.0) == 29


def test_drop_is_deterministic_for_a_seed_and_varies_with_it():
    frames, n = _batch([12, 11, 9], length=12)
    first = sakd.drop_frames(frames, n, 0.4, SEED).numpy()
    again = sakd.drop_frames(frames, n, 0.4, SEED).numpy()
    other = sakd.drop_frames(frames, n, 0.4, OTHER_SEED).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_drop_is_uniform_over_valid_frames():
    # 400 seeds, 2 of 8 valid frames dropped each time: every position is hit 100 times on
    # average (binomial sd ~8.7); padding never.
    frames, n = _batch([8], length=10, dim=1)
    hits = np.zeros(10)
    for s in range(400):
        out = sakd.drop_frames(frames, n, 0.25, tf.constant([s, 1])).numpy()
        hits += out[0, :, 0] == 0.0
    assert hits.sum() == 800
    assert hits[8:].sum() == 0
    assert hits[:8].min() > 60 and hits[:8].max() < 140


def test_drop_keeps_uint8_and_images():
    frames = tf.fill([2, 5, 2, 2, 3], tf.constant(9, tf.uint8))
    out = sakd.drop_frames(frames, tf.constant([4, 5]), 0.5, SEED)
    assert out.dtype == tf.uint8
    per_frame_zero = tf.reduce_all(tf.equal(out, 0), axis=[2, 3, 4]).numpy()
    np.testing.assert_array_equal(per_frame_zero.sum(axis=1), [2, 2])


def test_drop_rejects_beta_outside_unit_interval():
    frames, n = _batch([4])
    with pytest.raises(ValueError, match="beta"):
        sakd.drop_frames(frames, n, 1.5, SEED)


# --------------------------------------------------------------------------------- shuffle
def test_shuffle_keeps_valid_multiset_padding_and_moves_2_floor_n_half():
    num_frames = [10, 7, 1, 0, 12, 2]
    frames, n = _batch(num_frames)
    out = sakd.shuffle_frames(frames, n, SEED).numpy()
    before = frames.numpy()
    for b, valid in enumerate(num_frames):
        np.testing.assert_array_equal(out[b, valid:], SENTINEL)
        np.testing.assert_array_equal(np.sort(out[b, :valid, 0]), before[b, :valid, 0])
        moved = np.any(out[b, :valid] != before[b, :valid], axis=-1)
        assert moved.sum() == 2 * (valid // 2)  # 10, 6 (one stays), 0, 0, 12, 2


def test_shuffle_swaps_pairs():
    # Every moved frame traded places with exactly one other: applying the result as a
    # permutation twice gives the identity.
    frames, n = _batch([9], length=9, dim=1)
    out = sakd.shuffle_frames(frames, n, SEED).numpy()[0, :, 0]
    source = out.astype(int) - 1  # frame t holds t + 1
    np.testing.assert_array_equal(source[source], np.arange(9))
    assert np.sum(source == np.arange(9)) == 1


def test_shuffle_is_deterministic_for_a_seed_and_varies_with_it():
    frames, n = _batch([12, 10], length=12)
    first = sakd.shuffle_frames(frames, n, SEED).numpy()
    np.testing.assert_array_equal(first, sakd.shuffle_frames(frames, n, SEED).numpy())
    assert not np.array_equal(first, sakd.shuffle_frames(frames, n, OTHER_SEED).numpy())


# ------------------------------------------------------------------ temporal interruption
def test_interruption_drops_below_eta_and_shuffles_from_eta_on():
    frames, n = _batch([10, 8])
    below = sakd.temporal_interruption(frames, n, 0.4, SEED, eta=0.5)
    np.testing.assert_array_equal(below, sakd.drop_frames(frames, n, 0.4, SEED))
    at = sakd.temporal_interruption(frames, n, 0.5, SEED, eta=0.5)
    np.testing.assert_array_equal(at, sakd.shuffle_frames(frames, n, SEED))
    # A shuffle zeroes nothing; a drop of 0.4 zeroes floor(4.0) + floor(3.2) frames.
    assert np.sum(np.all(at.numpy() == 0, axis=-1)) == 0
    assert np.sum(np.all(below.numpy() == 0, axis=-1)) == 4 + 3
    # With a lower eta, 0.4 already shuffles.
    np.testing.assert_array_equal(
        sakd.temporal_interruption(frames, n, 0.4, SEED, eta=0.3),
        sakd.shuffle_frames(frames, n, SEED),
    )


def test_interruption_traces_in_tf_function_with_tensor_beta():
    frames, n = _batch([10, 7, 12])

    @tf.function
    def interrupt(frames, num_frames, beta, seed):
        return sakd.temporal_interruption(frames, num_frames, beta, seed)

    for beta in (0.3, 0.7):
        got = interrupt(frames, n, tf.constant(beta), SEED)
        expected = sakd.temporal_interruption(frames, n, beta, SEED)
        np.testing.assert_array_equal(got, expected)


def test_drop_and_shuffle_in_tf_data():
    frames, n = _batch([10, 7, 12])
    dataset = tf.data.Dataset.from_tensors({"frames": frames, "num_frames": n}).map(
        lambda batch: {
            "dropped": sakd.drop_frames(batch["frames"], batch["num_frames"], 0.3, SEED),
            "shuffled": sakd.shuffle_frames(batch["frames"], batch["num_frames"], SEED),
        }
    )
    got = next(iter(dataset))
    np.testing.assert_array_equal(got["dropped"], sakd.drop_frames(frames, n, 0.3, SEED))
    np.testing.assert_array_equal(got["shuffled"], sakd.shuffle_frames(frames, n, SEED))


@pytest.mark.parametrize("method", SELECTION_METHODS)
@pytest.mark.parametrize("beta", [0.0, 0.3, 0.7, 1.0])
def test_interrupted_selection_equals_selecting_from_the_interrupted_video(method, beta):
    """The difficulty pass gathers only the student's frames of the interrupted video (in
    tf.data); in feature space they are exactly the frames of interrupting all frames and then
    selecting k, for every selection method, drop and shuffle, and videos shorter than k."""
    rng = np.random.default_rng(3)
    frames = tf.constant(rng.integers(0, 256, size=(6, 12, 5)), tf.uint8)
    n = tf.constant([12, 9, 4, 1, 0, 7])  # 4, 1 and 0 frames: fewer than k = 5
    for seed in (SEED, tf.constant([9, 2], tf.int64)):
        features = yt8m_records.dequantize(frames)
        old_frames, old_n = sampling.select_frames(
            sakd.temporal_interruption(features, n, beta, seed), n, 5, method, seed=seed
        )
        picked = sakd.interrupted_selection(frames, n, beta, seed, k=5, method=method)
        new_frames = sakd.zero_dropped(yt8m_records.dequantize(picked["frames"]), picked["kept"])
        np.testing.assert_array_equal(new_frames, old_frames)
        np.testing.assert_array_equal(picked["num_frames"], old_n)
        assert picked["frames"].dtype == tf.uint8 and picked["frames"].shape == (6, 5, 5)


@pytest.mark.parametrize("beta", [0.3, 0.7])
def test_interrupted_selection_of_all_frames_and_images(beta):
    """k = 0 (a model of all frames): every position, padding included, as temporal_interruption
    leaves it; images (UCF101) are interrupted alike, a dropped frame a black image."""
    rng = np.random.default_rng(4)
    n = tf.constant([8, 3, 0])
    features = tf.constant(rng.standard_normal((3, 8, 4)), tf.float32)
    picked = sakd.interrupted_selection(features, n, beta, SEED, k=0, method="uniform")
    np.testing.assert_array_equal(
        sakd.zero_dropped(picked["frames"], picked["kept"]),
        sakd.temporal_interruption(features, n, beta, SEED),
    )
    images = tf.constant(rng.integers(0, 256, size=(3, 8, 2, 2, 3)), tf.uint8)
    old, _ = sampling.select_frames(
        sakd.temporal_interruption(images, n, beta, SEED), n, 4, "random", seed=SEED
    )
    picked = sakd.interrupted_selection(images, n, beta, SEED, k=4, method="random")
    np.testing.assert_array_equal(sakd.zero_dropped(picked["frames"], picked["kept"]), old)


# --------------------------------------------------------------------- difficulty, strength
def test_normalise_difficulty_hand_example():
    np.testing.assert_allclose(sakd.normalise_difficulty([2.0, 4.0, 3.0, 6.0]), [0, 0.5, 0.25, 1])
    np.testing.assert_array_equal(sakd.normalise_difficulty([1.5, 1.5, 1.5]), [0, 0, 0])
    with pytest.raises(ValueError, match="finite"):
        sakd.normalise_difficulty([1.0, np.nan])


def test_update_strength_paper_mapping():
    # 0.1 * alpha_old + 0.9 * (1 - d_hat): 0 + 0.9, 0.05 + 0.45, 0.1 + 0.
    got = sakd.update_strength([0.0, 0.5, 1.0], [0.0, 0.5, 1.0], memory=0.1)
    np.testing.assert_allclose(got, [0.9, 0.5, 0.1], atol=1e-12)
    # Without memory the strength is 1 - d_hat itself.
    got = sakd.update_strength([0.3, 0.3], [0.25, 1.0], memory=0.0)
    np.testing.assert_allclose(got, [0.75, 0.0], atol=1e-12)


def test_update_strength_released_mapping():
    # 0.1 * alpha_old + 0.9 * beta * d_hat with beta = 0.5: 0, 0.05 + 0.225, 0.1 + 0.45.
    got = sakd.update_strength([0.0, 0.5, 1.0], [0.0, 0.5, 1.0], mapping="released", beta=0.5)
    np.testing.assert_allclose(got, [0.0, 0.275, 0.55], atol=1e-12)
    got = sakd.update_strength([0.9], [0.8], memory=0.0, mapping="released", beta=0.5)
    np.testing.assert_allclose(got, [0.4], atol=1e-12)
    with pytest.raises(ValueError, match="beta"):
        sakd.update_strength([0.0], [0.5], mapping="released")
    with pytest.raises(ValueError, match="paper, released"):
        sakd.update_strength([0.0], [0.5], mapping="inverse")
    with pytest.raises(ValueError, match="differ"):
        sakd.update_strength([0.0, 0.1], [0.5], memory=0.1)


def test_sample_adaptive_loss_hand_computed():
    # (1 - a) * label + a * distill: 2, 0.75 * 4 + 0.25 * 8 = 5, 10.
    got = sakd.sample_adaptive_loss([2.0, 4.0, 6.0], [1.0, 8.0, 10.0], [0.0, 0.25, 1.0])
    assert got.dtype == tf.float32
    np.testing.assert_allclose(got, [2.0, 5.0, 10.0], atol=1e-6)
    with pytest.raises(ValueError, match="alpha"):
        sakd.sample_adaptive_loss([2.0, 4.0], [1.0, 8.0], [[0.1], [0.2]])


# ---------------------------------------------------------------------------------- config
def test_config_defaults_are_the_spec_constants():
    config = SAKDConfig()
    assert (config.ratio, config.selection_interval, config.schedule, config.eta) == (
        0.1,
        5,
        "polynomial",
        0.5,
    )
    assert (config.memory, config.gamma, config.mapping, config.power) == (0.1, 0.5, "paper", 0.9)


@pytest.mark.parametrize(
    "field,value",
    [
        ("ratio", 0.0),
        ("ratio", 1.5),
        ("selection_interval", 0),
        ("selection_interval", 2.5),
        ("schedule", "step"),
        ("eta", -0.1),
        ("eta", 1.1),
        ("memory", 1.0),
        ("memory", -0.1),
        ("gamma", 1.5),
        ("mapping", "inverse"),
        ("power", 0.0),
    ],
)
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field if field != "memory" else "lambda"):
        SAKDConfig(**{field: value})
