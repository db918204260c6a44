"""Frame selection: which k of a video's valid frames a few-frame student sees.

Pure TensorFlow functions on padded batches, usable in a `tf.data` map and inside a (jit-compiled)
`tf.function` step alike. Every method picks k *distinct* valid frames in temporal order:

| method              | frame indices for a video of n >= k valid frames, i = 0 .. k-1          |
| ------------------- | ----------------------------------------------------------------------- |
| `uniform`           | floor((i + 0.5) * n / k): the centre of each of k equal segments        |
| `random`            | k distinct frames drawn uniformly at random, sorted                     |
| `first`             | i                                                                       |
| `middle`            | (n - k) // 2 + i                                                        |
| `last`              | n - k + i                                                               |
| `first_middle_last` | three contiguous blocks: ceil(k/3) frames from the start, then          |
|                     | ceil(r/2) from the middle and floor(r/2) from the end, r = k - ceil(k/3) |

`first_middle_last` details: with a = ceil(k/3), m = ceil(r/2), l = floor(r/2) (k=6 -> 2, 2, 2;
k=5 -> 2, 2, 1; k=4 -> 2, 1, 1), the blocks are [0, a), [s, s + m) and [n - l, n), where the middle
block starts at s = (n - m) // 2 clipped into [a, n - l - m] so that the blocks never overlap.

Videos shorter than k (n < k): every method returns all n valid frames in order followed by k - n
padding positions. Their index is -1 in `frame_indices`, and `select_frames` fills them with zeros;
a frame is never repeated and padding (frames at or past n) is never read. The selected videos have
`min(n, k)` valid frames, so a model's mask stays right.
"""

from __future__ import annotations

import tensorflow as tf

from yt8m_kd.configs import SELECTION_METHODS


def _check_arguments(k: int, method: str) -> None:
    if method not in SELECTION_METHODS:
        raise ValueError(
            f"unknown frame selection method {method!r}; valid methods: {', '.join(SELECTION_METHODS)}"
        )
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ValueError(f"k (frames to select) must be a positive int, got {k!r}")


def _random_indices(
    n: tf.Tensor, k: int, seed: tf.Tensor | None, max_frames: int | tf.Tensor | None
) -> tf.Tensor:
    """k distinct uniform random indices in [0, n) per row, sorted; rows with n < k get 0 .. n-1.

    The k smallest of i.i.d. uniform keys are a uniformly random k-subset. Invalid positions get
    keys above every valid one, so they are picked only when a video has fewer than k frames.
    """
    batch = tf.shape(n)[0]
    width = tf.reduce_max(n) if max_frames is None else max_frames
    # A static width keeps the shapes static under XLA.
    width = max(width, k) if isinstance(width, int) else tf.maximum(tf.cast(width, tf.int32), k)
    shape = tf.stack([batch, width])
    if seed is None:
        keys = tf.random.uniform(shape)
    elif seed.shape.rank == 2:
        # One seed per row: a row's keys depend on its own seed and the width only, not on its
        # position in the batch or on the other rows. The extra row, dropped after, is there
        # because a map over no rows (an empty request) cannot stack its empty result.
        padded = tf.concat([seed, tf.zeros([1, 2], seed.dtype)], axis=0)
        keys = tf.map_fn(
            lambda row_seed: tf.random.stateless_uniform([width], seed=row_seed),
            padded,
            fn_output_signature=tf.float32,
        )
        keys = tf.reshape(keys[:-1], shape)
    else:
        keys = tf.random.stateless_uniform(shape, seed=seed)
    positions = tf.range(width)[tf.newaxis, :]
    keys = tf.where(positions < n[:, tf.newaxis], keys, 2.0 + tf.cast(positions, tf.float32))
    _, picked = tf.math.top_k(-keys, k=k, sorted=False)
    return tf.sort(picked, axis=-1)


def frame_indices(
    num_frames: tf.Tensor,
    k: int,
    method: str,
    seed: tf.Tensor | None = None,
    max_frames: int | tf.Tensor | None = None,
) -> tf.Tensor:
    """Indices of the k frames each video contributes (see the module docstring for each method).

    Args:
      num_frames: [B] int, valid frames per video.
      k: frames to select, a positive Python int.
      method: one of `SELECTION_METHODS`.
      seed: `random` only: an optional int tensor for stateless random ops, so that the same seed
        gives the same frames; without it the stateful global generator is used. Shape [2]: one
        draw for the batch, a row's frames depending on its position in the batch (training).
        Shape [B, 2]: one seed per row, a row's frames depending on its seed, n and the key
        width only (max_frames; without it the batch's longest n), whatever the other rows
        (evaluation: a seed per video). The stream is
        TensorFlow's: under XLA (jit_compile) a seed given at run time draws other frames than
        without XLA, each reproducible in its own mode.
      max_frames: optional padded length T of the frame tensor: num_frames is clipped to it, and
        `random` uses it (static under XLA) instead of max(num_frames) as its key width.

    Returns:
      [B, k] int32, increasing along k; positions at or past min(n, k) hold -1.

    Raises:
      ValueError: unknown method or k <= 0.
    """
    _check_arguments(k, method)
    if seed is not None:
        seed = tf.convert_to_tensor(seed)
        if seed.shape.rank is not None and seed.shape.rank not in (1, 2):
            raise ValueError(f"seed must have shape [2] or [B, 2], got {seed.shape}")
    n = tf.maximum(tf.cast(num_frames, tf.int32), 0)
    if max_frames is not None:
        n = tf.minimum(n, tf.cast(max_frames, tf.int32))
    nn = n[:, tf.newaxis]  # [B, 1]
    i = tf.range(k, dtype=tf.int32)[tf.newaxis, :]  # [1, k]
    full = nn >= k  # rows with at least k frames; the others take 0 .. n-1

    if method == "uniform":
        # floor((i + 0.5) * n / k) in exact integer arithmetic.
        indices = tf.where(full, ((2 * i + 1) * nn) // (2 * k), i)
    elif method == "random":
        indices = _random_indices(n, k, seed, max_frames)
    elif method == "first":
        indices = i + tf.zeros_like(nn)
    elif method == "middle":
        indices = tf.maximum((nn - k) // 2, 0) + i
    elif method == "last":
        indices = tf.maximum(nn - k, 0) + i
    else:  # first_middle_last
        num_first = -(-k // 3)
        rest = k - num_first
        num_middle, num_last = -(-rest // 2), rest // 2
        middle_start = tf.clip_by_value(
            (nn - num_middle) // 2, num_first, tf.maximum(nn - num_last - num_middle, num_first)
        )
        blocks = tf.where(
            i < num_first,
            i,
            tf.where(
                i < num_first + num_middle,
                middle_start + (i - num_first),
                nn - num_last + (i - num_first - num_middle),
            ),
        )
        indices = tf.where(full, blocks, i)
    return tf.where(i < nn, indices, -1)


def select_frames(
    frames: tf.Tensor, num_frames: tf.Tensor, k: int, method: str, seed: tf.Tensor | None = None
) -> tuple[tf.Tensor, tf.Tensor]:
    """Gathers k frames per video with `frame_indices`.

    Args:
      frames: [B, T, ...] padded frames (any dtype: uint8 features, float features, images).
      num_frames: [B] int, valid frames per video (values above T are clipped to T).
      k, method, seed: as in `frame_indices`.

    Returns:
      (frames [B, k, ...] of the same dtype, zeros at padding positions; num_frames [B] int32 =
      min(n, k)).
    """
    picked, selected_num_frames, _ = select_frames_with_indices(
        frames, num_frames, k, method, seed=seed
    )
    return picked, selected_num_frames


def select_frames_with_indices(
    frames: tf.Tensor, num_frames: tf.Tensor, k: int, method: str, seed: tf.Tensor | None = None
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """`select_frames`, plus the [B, k] int32 `frame_indices` it gathered (-1 at padding)."""
    _check_arguments(k, method)
    frames = tf.convert_to_tensor(frames)
    length = frames.shape[1] if frames.shape[1] is not None else tf.shape(frames)[1]
    n = tf.minimum(tf.cast(num_frames, tf.int32), length)
    indices = frame_indices(n, k, method, seed=seed, max_frames=length)  # [B, k]
    picked = tf.gather(frames, tf.maximum(indices, 0), batch_dims=1)  # [B, k, ...]
    valid = indices >= 0
    for _ in range(frames.shape.rank - 2):  # broadcast over the per-frame dimensions
        valid = valid[..., tf.newaxis]
    picked = tf.where(valid, picked, tf.zeros_like(picked))
    return picked, tf.minimum(n, k), indices
