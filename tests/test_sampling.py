"""Frame selection against hand-computed indices; short videos; padding never read; random-k."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from yt8m_kd.data import sampling

# (n, k) -> expected indices per method, worked by hand from the definitions in sampling.py.
#   uniform: floor((i + 0.5) * n / k); middle: start (n - k) // 2; last: start n - k;
#   first_middle_last: a = ceil(k/3) first, m = ceil((k-a)/2) middle from clip((n-m)//2, a,
#   n-l-m), l = (k-a)//2 last.
EXPECTED = {
    (10, 4): {
        "uniform": [1, 3, 6, 8],  # 1.25, 3.75, 6.25, 8.75
        "first": [0, 1, 2, 3],
        "middle": [3, 4, 5, 6],
        "last": [6, 7, 8, 9],
        "first_middle_last": [0, 1, 4, 9],  # a=2, m=1 from (10-1)//2=4, l=1
    },
    (7, 3): {
        "uniform": [1, 3, 5],  # 1.17, 3.5, 5.83
        "first": [0, 1, 2],
        "middle": [2, 3, 4],
        "last": [4, 5, 6],
        "first_middle_last": [0, 3, 6],  # a=1, m=1 from 3, l=1
    },
    (300, 6): {
        "uniform": [25, 75, 125, 175, 225, 275],
        "first": [0, 1, 2, 3, 4, 5],
        "middle": [147, 148, 149, 150, 151, 152],
        "last": [294, 295, 296, 297, 298, 299],
        "first_middle_last": [0, 1, 149, 150, 298, 299],  # a=2, m=2 from 149, l=2
    },
    (7, 6): {
        "uniform": [0, 1, 2, 4, 5, 6],  # 0.58, 1.75, 2.92, 4.08, 5.25, 6.42
        "first": [0, 1, 2, 3, 4, 5],
        "middle": [0, 1, 2, 3, 4, 5],
        "last": [1, 2, 3, 4, 5, 6],
        # a=2, m=2 from (7-2)//2=2 (already >= a), l=2 from 5
        "first_middle_last": [0, 1, 2, 3, 5, 6],
    },
    (5, 4): {
        "uniform": [0, 1, 3, 4],  # 0.625, 1.875, 3.125, 4.375
        "first": [0, 1, 2, 3],
        "middle": [0, 1, 2, 3],
        "last": [1, 2, 3, 4],
        # a=2, m=1 from (5-1)//2=2, l=1: the middle start is clipped to [2, 3]
        "first_middle_last": [0, 1, 2, 4],
    },
    (6, 6): {m: [0, 1, 2, 3, 4, 5] for m in sampling.SELECTION_METHODS if m != "random"},
}


@pytest.mark.parametrize("n,k", sorted(EXPECTED))
def test_hand_computed_indices(n, k):
    for method, expected in EXPECTED[(n, k)].items():
        got = sampling.frame_indices(tf.constant([n]), k, method).numpy()
        assert got.tolist() == [expected], method
        assert got.dtype == np.int32


def test_a_batch_mixes_lengths():
    got = sampling.frame_indices(tf.constant([10, 7, 300]), 3, "uniform").numpy()
    assert got.tolist() == [[1, 5, 8], [1, 3, 5], [50, 150, 250]]


@pytest.mark.parametrize("method", sampling.SELECTION_METHODS)
def test_short_videos_take_every_frame_then_padding(method):
    got = sampling.frame_indices(tf.constant([4, 1, 0]), 6, method, seed=[1, 2]).numpy()
    assert got.tolist() == [
        [0, 1, 2, 3, -1, -1],
        [0, -1, -1, -1, -1, -1],
        [-1, -1, -1, -1, -1, -1],
    ]


def _frames_with_poisoned_padding(num_frames, length, width=3):
    """frames[b, t] = 1 + t while t < n (every frame distinct), 255 in the padding."""
    t = np.arange(length)[None, :, None]
    n = np.asarray(num_frames)[:, None, None]
    frames = np.where(t < n, 1 + t, 255) * np.ones((len(num_frames), length, width))
    return tf.constant(frames.astype(np.uint8))


@pytest.mark.parametrize("method", sampling.SELECTION_METHODS)
def test_select_frames_never_reads_padding(method):
    num_frames = [12, 9, 3, 0, 12]
    frames = _frames_with_poisoned_padding(num_frames, 12)
    for seed in range(20):
        out, n_out = sampling.select_frames(
            frames, tf.constant(num_frames), 5, method, seed=[seed, 0]
        )
        out, n_out = out.numpy(), n_out.numpy()
        assert out.shape == (5, 5, 3) and out.dtype == np.uint8
        assert n_out.tolist() == [5, 5, 3, 0, 5]
        assert not (out == 255).any()
        for b, n in enumerate(num_frames):
            values = out[b, :, 0].astype(int)
            valid = values[: min(n, 5)]
            assert (np.diff(valid) > 0).all()  # distinct and in temporal order
            assert ((valid >= 1) & (valid <= n)).all()
            assert (out[b, min(n, 5) :] == 0).all()  # padding positions are zeros


def test_select_frames_gathers_the_indexed_frames():
    frames = _frames_with_poisoned_padding([10], 10)
    out, n_out = sampling.select_frames(frames, tf.constant([10]), 4, "uniform")
    assert out.numpy()[0, :, 0].tolist() == [2, 4, 7, 9]  # 1 + [1, 3, 6, 8]
    assert n_out.numpy().tolist() == [4]


def test_select_frames_clips_num_frames_to_the_frame_axis():
    frames = _frames_with_poisoned_padding([4], 4)
    out, n_out = sampling.select_frames(frames, tf.constant([9]), 4, "last")
    assert out.numpy()[0, :, 0].tolist() == [1, 2, 3, 4]
    assert n_out.numpy().tolist() == [4]


def test_random_is_distinct_sorted_in_range_and_seeded():
    n = tf.constant([50, 8, 6, 3])
    first = sampling.frame_indices(n, 6, "random", seed=[3, 4]).numpy()
    again = sampling.frame_indices(n, 6, "random", seed=tf.constant([3, 4], tf.int64)).numpy()
    other = sampling.frame_indices(n, 6, "random", seed=[3, 5]).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first[0], other[0])
    for row, count in zip(first, [50, 8, 6, 3], strict=True):
        valid = row[: min(count, 6)]
        assert (np.diff(valid) > 0).all()
        assert valid.min() >= 0 and valid.max() < count
    assert first[2].tolist() == [0, 1, 2, 3, 4, 5]  # n == k: every frame
    assert first[3].tolist() == [0, 1, 2, -1, -1, -1]


def test_random_covers_every_frame_evenly():
    # 2000 draws of 3 out of 10 frames: each frame expected 600 times.
    n = tf.fill([2000], 10)
    picks = sampling.frame_indices(n, 3, "random", seed=[7, 7]).numpy()
    counts = np.bincount(picks.ravel(), minlength=10)
    assert counts.sum() == 6000
    assert np.all(np.abs(counts - 600) < 100), counts
    # Without a seed it still works (stateful generator).
    unseeded = sampling.frame_indices(tf.constant([10]), 3, "random").numpy()
    assert (np.diff(unseeded[0]) > 0).all()


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("method", sampling.SELECTION_METHODS)
def test_works_inside_tf_function(method, jit_compile):
    frames = tf.random.stateless_uniform([3, 20, 4], seed=[0, 1])

    @tf.function(jit_compile=jit_compile)
    def step(frames, num_frames, seed):
        return sampling.select_frames(frames, num_frames, 6, method, seed=seed)

    num_frames = tf.constant([20, 11, 4])
    seed = tf.constant([1, 2], tf.int64)
    out, n_out = step(frames, num_frames, seed)
    again, _ = step(frames, num_frames, seed)
    eager, eager_n = sampling.select_frames(frames, num_frames, 6, method, seed=seed)
    np.testing.assert_array_equal(out.numpy(), again.numpy())
    assert n_out.numpy().tolist() == eager_n.numpy().tolist() == [6, 6, 4]
    if method != "random" or not jit_compile:  # XLA has its own random stream for a seed
        np.testing.assert_array_equal(out.numpy(), eager.numpy())
    # Whatever the mode, every output frame is one of the video's valid frames, in order.
    for b, n in enumerate([20, 11, 4]):
        rows = [
            int(np.flatnonzero((frames[b] == frame).numpy().all(-1))[0])
            for frame in out[b, : min(n, 6)]
        ]
        assert rows == sorted(set(rows)) and max(rows) < n
        assert not out.numpy()[b, min(n, 6) :].any()


def test_works_in_tf_data():
    frames = _frames_with_poisoned_padding([8, 2], 8)
    dataset = tf.data.Dataset.from_tensor_slices((frames, tf.constant([8, 2]))).batch(2)
    dataset = dataset.map(lambda f, n: sampling.select_frames(f, n, 3, "first_middle_last"))
    out, n_out = next(iter(dataset))
    # n=8, k=3: a=1, m=1 from clip((8-1)//2=3, 1, 6)=3, l=1 -> frames 0, 3, 7 hold 1, 4, 8.
    assert out.numpy()[:, :, 0].tolist() == [[1, 4, 8], [1, 2, 0]]
    assert n_out.numpy().tolist() == [3, 2]


def test_bad_arguments():
    with pytest.raises(ValueError, match="uniform, random, first, middle, last, first_middle_last"):
        sampling.frame_indices(tf.constant([5]), 3, "centre")
    for k in (0, -2, 2.0):
        with pytest.raises(ValueError, match="positive int"):
            sampling.select_frames(tf.zeros([1, 5, 2]), tf.constant([5]), k, "uniform")
