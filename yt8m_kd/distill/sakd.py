"""SAKD building blocks: interruption, difficulty, strength and the sample-adaptive loss.

Sample-level Adaptive Knowledge Distillation (Li, Ping, Wang, Song, ACM MM 2025), built to
docs/sakd.md, "The spec for this project". Each function cites the line it implements.

Two kinds of functions live here:
- TensorFlow functions on padded batches (the batch contract of docs/design.md: `frames` [B, T, ...],
  `num_frames` [B]): the temporal interruption applied to the student's input during a difficulty
  pass, and the per-sample loss. They trace under `tf.function`, run in a `tf.data` map, and draw
  their randomness from an explicit shape-[2] integer seed (stateless ops), so a seed fixes the
  result.
- numpy functions over the whole training set, run once per difficulty pass: the min-max
  normalisation of difficulty and the strength update.

Only valid frames (positions below `num_frames`) are ever dropped or moved; padding is left exactly
as it was. `num_frames` never changes: a dropped frame is zeroed in feature space and still counts
as a frame (the spec's "drop (zero) frames").
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import tensorflow as tf

from yt8m_kd.configs import (
    POLYNOMIAL_POWER,
    check_mapping,
    check_memory,
    check_schedule,
)
from yt8m_kd.data import sampling

# floor(beta * n) is taken in float64 with this slack so that binary representation error does not
# lose a frame: 0.29 * 100 is 28.999999999999996 in float64, and we drop 29 frames, not 28. A beta
# passed as a float32 tensor carries float32 rounding (0.29 is 0.2899999917), which this slack does
# not undo: pass a Python float or a float64 tensor where the exact count matters.
_FLOOR_SLACK = 1e-9


# ------------------------------------------------------------------------ interruption rate
def interruption_rate(
    epoch, num_epochs, schedule: str = "polynomial", power: float = POLYNOMIAL_POWER
):
    """The interruption rate beta(n) in [0, 1] at epoch n of N.

    docs/sakd.md, "Constants reported": polynomial `1 - (1 - n/N)^0.9` (the paper's best),
    linear `n/N`, cosine `0.5 (1 - cos(pi n / N))`. n is clipped to [0, N], so beta(0) = 0 and
    beta(N) = 1 for every schedule.

    Args:
      epoch: n, the current epoch (a Python number or a scalar tensor).
      num_epochs: N > 0, the number of training epochs.
      schedule: one of `SCHEDULES`.
      power: the polynomial schedule's exponent.

    Returns:
      A Python float when epoch and num_epochs are Python numbers; a float32 scalar tensor when
      either is a tensor.

    Raises:
      ValueError: unknown schedule, or a Python num_epochs <= 0.
    """
    check_schedule(schedule)
    if isinstance(num_epochs, numbers.Real) and num_epochs <= 0:
        raise ValueError(f"num_epochs must be positive, got {num_epochs}")
    if isinstance(epoch, numbers.Real) and isinstance(num_epochs, numbers.Real):
        progress = min(max(float(epoch), 0.0), float(num_epochs)) / float(num_epochs)
        if schedule == "polynomial":
            return 1.0 - (1.0 - progress) ** power
        if schedule == "linear":
            return progress
        return 0.5 * (1.0 - math.cos(math.pi * progress))

    num_epochs = tf.cast(num_epochs, tf.float32)
    progress = tf.clip_by_value(tf.cast(epoch, tf.float32), 0.0, num_epochs) / num_epochs
    if schedule == "polynomial":
        return 1.0 - tf.pow(1.0 - progress, power)
    if schedule == "linear":
        return progress
    return 0.5 * (1.0 - tf.cos(math.pi * progress))


# ---------------------------------------------------------------------- temporal interruption
def _valid_counts(frames: tf.Tensor, num_frames) -> tuple[tf.Tensor, tf.Tensor]:
    """(n [B] int32 clipped to [0, T], T scalar int32)."""
    length = tf.shape(frames)[1]
    n = tf.clip_by_value(tf.cast(num_frames, tf.int32), 0, length)
    return n, length


def _random_ranks(n: tf.Tensor, length: tf.Tensor, seed) -> tuple[tf.Tensor, tf.Tensor]:
    """A uniformly random ordering of each row's valid positions, then its padding in order.

    Returns (order [B, T]: order[b, r] is the position of rank r, a permutation whose first n[b]
    entries are the valid positions in uniformly random order; rank [B, T]: its inverse, the rank
    of each position). Valid positions get uniform keys in [0, 1), padding gets 2 + position, so
    padding always ranks after every valid frame and keeps its own order.
    """
    shape = tf.stack([tf.shape(n)[0], length])
    keys = tf.random.stateless_uniform(shape, seed=seed)
    positions = tf.range(length)[tf.newaxis, :]
    keys = tf.where(positions < n[:, tf.newaxis], keys, 2.0 + tf.cast(positions, tf.float32))
    order = tf.argsort(keys, axis=-1, stable=True)
    rank = tf.argsort(order, axis=-1, stable=True)
    return order, rank


def _per_frame(mask: tf.Tensor, frames: tf.Tensor) -> tf.Tensor:
    """Broadcasts a [B, T] mask over the per-frame dimensions of frames [B, T, ...]."""
    for _ in range(frames.shape.rank - 2):
        mask = mask[..., tf.newaxis]
    return mask


def _check_beta(beta) -> None:
    if isinstance(beta, numbers.Real) and not 0.0 <= beta <= 1.0:
        raise ValueError(f"interruption rate beta must be in [0, 1], got {beta}")


def drop_frames(frames: tf.Tensor, num_frames: tf.Tensor, beta, seed) -> tf.Tensor:
    """Zeroes floor(beta * n) of each video's n valid frames, chosen uniformly at random.

    docs/sakd.md, "Constants reported": "while beta < eta, drop (zero) floor(beta * T) random
    frames"; the spec, step 1: among the sample's valid frames, not the padding. Each video counts
    with its own n (T of the spec is that video's length), and exactly floor(beta * n) distinct
    valid frames become zeros; every other frame, padding included, is returned unchanged.
    `num_frames` is unchanged: the dropped frames stay in place as zero features.

    Args:
      frames: [B, T, ...] padded frames of any dtype (uint8 or float features, images).
      num_frames: [B] int, valid frames per video (clipped to [0, T]).
      beta: interruption rate in [0, 1], a Python float or a scalar tensor (clipped to [0, 1]).
      seed: shape-[2] int seed of the stateless random ops; the same seed drops the same frames.

    Returns:
      frames with the same shape and dtype.

    Raises:
      ValueError: a Python beta outside [0, 1].
    """
    _check_beta(beta)
    frames = tf.convert_to_tensor(frames)
    dropped = _dropped_positions(*_valid_counts(frames, num_frames), beta, seed)
    return tf.where(_per_frame(dropped, frames), tf.zeros_like(frames), frames)


def _dropped_positions(n: tf.Tensor, length: tf.Tensor, beta, seed) -> tf.Tensor:
    """[B, T] bool: the positions `drop_frames` zeroes."""
    # A Python beta becomes float64 directly (tf.cast would round it through float32 first).
    if isinstance(beta, numbers.Real):
        beta = tf.constant(float(beta), tf.float64)
    beta = tf.clip_by_value(tf.cast(beta, tf.float64), 0.0, 1.0)
    num_drop = tf.cast(tf.floor(beta * tf.cast(n, tf.float64) + _FLOOR_SLACK), tf.int32)  # [B]
    num_drop = tf.minimum(num_drop, n)
    _, rank = _random_ranks(n, length, seed)
    # The valid frames hold ranks 0 .. n-1 in random order: the first num_drop of them are a
    # uniformly random subset of that size, and padding (rank >= n >= num_drop) is never hit.
    return rank < num_drop[:, tf.newaxis]


def shuffle_frames(frames: tf.Tensor, num_frames: tf.Tensor, seed) -> tf.Tensor:
    """Swaps a random half of each video's valid frames with the other half, pair by pair.

    docs/sakd.md, "Constants reported": from beta >= eta on, "shuffle: swap a random half of
    the frames with the other half"; the spec, step 1: among the valid frames, not the padding.

    Exactly what happens to a video with n valid frames, m = floor(n / 2): the valid positions are
    put in a uniformly random order p_0 .. p_{n-1}. A = {p_0 .. p_{m-1}} is a uniformly random
    half; p_j is paired with p_{m+j} (a uniformly random partner among the remaining valid
    frames, each used once), and the two frames of every pair trade places. So 2m frames move to
    another position, the multiset of valid frames is unchanged, a video with n odd keeps one
    frame (p_{n-1}) where it was, and padding is untouched. A video with n < 2 is unchanged.

    Args:
      frames: [B, T, ...] padded frames of any dtype.
      num_frames: [B] int, valid frames per video (clipped to [0, T]); unchanged by the shuffle.
      seed: shape-[2] int seed of the stateless random ops.

    Returns:
      frames with the same shape and dtype.
    """
    frames = tf.convert_to_tensor(frames)
    source = _shuffle_sources(*_valid_counts(frames, num_frames), seed)
    return tf.gather(frames, source, batch_dims=1)


def _shuffle_sources(n: tf.Tensor, length: tf.Tensor, seed) -> tf.Tensor:
    """[B, T] int32: the position whose frame `shuffle_frames` puts at each position."""
    order, rank = _random_ranks(n, length, seed)
    half = (n // 2)[:, tf.newaxis]  # m, [B, 1]
    # Rank r < m is paired with rank r + m and the other way round; ranks >= 2m (the odd frame
    # out and all padding) are their own partner, so they stay where they are.
    partner_rank = tf.where(rank < half, rank + half, tf.where(rank < 2 * half, rank - half, rank))
    return tf.gather(order, partner_rank, batch_dims=1)


def temporal_interruption(
    frames: tf.Tensor, num_frames: tf.Tensor, beta, seed, eta: float = 0.5
) -> tf.Tensor:
    """The student's interrupted input of a difficulty pass: drop below eta, shuffle from eta on.

    docs/sakd.md, "Constants reported" (threshold eta = 0.5) and the spec, step 1: while
    beta < eta, `drop_frames(frames, num_frames, beta, seed)`; once beta >= eta,
    `shuffle_frames(frames, num_frames, seed)`. `num_frames` is unchanged either way.

    Args:
      frames, num_frames, seed: as in `drop_frames`.
      beta: interruption rate in [0, 1]. A Python number chooses the branch in Python (one op
        graph); a scalar tensor chooses it with `tf.cond`.
      eta: the threshold.

    Returns:
      frames with the same shape and dtype.
    """
    _check_beta(beta)
    if isinstance(beta, numbers.Real):
        if beta < eta:
            return drop_frames(frames, num_frames, beta, seed)
        return shuffle_frames(frames, num_frames, seed)
    beta = tf.convert_to_tensor(beta)
    return tf.cond(
        beta < tf.cast(eta, beta.dtype),
        lambda: drop_frames(frames, num_frames, beta, seed),
        lambda: shuffle_frames(frames, num_frames, seed),
    )


def interruption_sources(
    num_frames: tf.Tensor, length, beta, seed, eta: float = 0.5
) -> tuple[tf.Tensor, tf.Tensor]:
    """`temporal_interruption` as positions: (source [B, T] int32, kept [B, T] bool) such that
    position t of the interrupted video holds frame source[b, t] of the original where kept[b, t]
    and a zero frame elsewhere:

        temporal_interruption(frames, ...) == where(kept, gather(frames, source, batch_dims=1), 0)

    Drop: source is the identity and kept is False at the dropped frames; shuffle: source is the
    swap and kept is all True. It draws the same random numbers from the same seed, so it
    describes exactly the frames `temporal_interruption` returns; `interrupted_selection` uses it
    to gather only the frames a student reads.

    Args:
      num_frames: [B] int, valid frames per video (clipped to [0, length]).
      length: T, the padded length (a Python int or a scalar int tensor).
      beta, seed, eta: as in `temporal_interruption`.
    """
    _check_beta(beta)
    length = tf.cast(length, tf.int32)
    n = tf.clip_by_value(tf.cast(num_frames, tf.int32), 0, length)
    identity = tf.broadcast_to(tf.range(length)[tf.newaxis, :], tf.stack([tf.shape(n)[0], length]))

    def drop():
        return identity, ~_dropped_positions(n, length, beta, seed)

    def shuffle():
        return _shuffle_sources(n, length, seed), tf.ones_like(identity, tf.bool)

    if isinstance(beta, numbers.Real):
        return drop() if beta < eta else shuffle()
    beta = tf.convert_to_tensor(beta)
    return tf.cond(beta < tf.cast(eta, beta.dtype), drop, shuffle)


def interrupted_selection(
    frames: tf.Tensor, num_frames: tf.Tensor, beta, seed, *, k: int, method: str, eta: float = 0.5
) -> dict[str, tf.Tensor]:
    """The frames a k-frame student reads of the interrupted video, gathered from the original
    frames without interrupting the others (a difficulty pass in tf.data: only these reach the
    model).

    The old way, `select_frames(temporal_interruption(frames, ...), num_frames, k, method,
    seed=seed)` with the same seed, interrupts all T frames and then selects k; since the
    interruption only moves or zeroes frames and never changes num_frames, the student's k
    positions are the same either way, and each is looked up in `interruption_sources`.
    With k = 0 (a model of all frames) every position is kept in place.

    Args:
      frames: [B, T, ...] padded frames of any dtype (uint8 features, images).
      num_frames, beta, seed, eta: as in `temporal_interruption` (one seed, also the selection's).
      k, method: the student's `k_frames` and `frame_selection`; k = 0 for all frames.

    Returns:
      {"frames": [B, k, ...] (or [B, T, ...]) of frames' dtype, "kept": [B, k] (or [B, T]) bool,
      "num_frames": [B] int32, and with k > 0 "frame_indices": [B, k] int32 (-1 at padding)}.
      The interrupted selection is where(kept, f(frames), 0) for any per-frame f that maps the
      frames to the model's features (dequantization): a dropped frame, or a padding position of
      a video shorter than k, is a zero frame of those features.
    """
    frames = tf.convert_to_tensor(frames)
    length = frames.shape[1] if frames.shape[1] is not None else tf.shape(frames)[1]
    n = tf.clip_by_value(tf.cast(num_frames, tf.int32), 0, length)
    source, kept = interruption_sources(n, length, beta, seed, eta=eta)
    if k <= 0:
        return {
            "frames": tf.gather(frames, source, batch_dims=1),
            "kept": kept,
            "num_frames": n,
        }
    indices = sampling.frame_indices(n, k, method, seed=seed, max_frames=length)  # [B, k]
    valid = indices >= 0
    at = tf.maximum(indices, 0)
    picked = tf.gather(frames, tf.gather(source, at, batch_dims=1), batch_dims=1)
    return {
        "frames": picked,
        "kept": valid & tf.gather(kept, at, batch_dims=1),
        "num_frames": tf.minimum(n, k),
        "frame_indices": indices,
    }


def zero_dropped(frames: tf.Tensor, kept: tf.Tensor) -> tf.Tensor:
    """frames [B, T', ...] with the frames where kept [B, T'] is False zeroed: the model's view of
    an `interrupted_selection` once its frames are in feature space."""
    return tf.where(_per_frame(kept, frames), frames, tf.zeros_like(frames))


# ------------------------------------------------------------------- difficulty and strength
def normalise_difficulty(difficulty) -> np.ndarray:
    """Min-max normalisation of the difficulty over the whole training set: d -> d_hat in [0, 1].

    The spec, step 1: "Normalise over the training set to d_hat_i in [0, 1] (min-max)",
    `d_hat = (d - min d) / (max d - min d)`, taken over every element of the input. When all
    difficulties are equal there is nothing to rank: d_hat is all zeros (every sample counts as
    easiest, so the paper mapping moves every strength toward 1 alike).

    Args:
      difficulty: array-like of per-sample distillation losses, any shape.

    Returns:
      float64 array of the same shape, values in [0, 1].

    Raises:
      ValueError: a NaN or infinite difficulty (a diverged loss would otherwise set the range of
        every other sample silently).
    """
    d = np.asarray(difficulty, dtype=np.float64)
    if d.size == 0:
        return d.copy()
    if not np.all(np.isfinite(d)):
        raise ValueError(
            f"difficulty must be finite; got {int(np.sum(~np.isfinite(d)))} NaN or inf values"
        )
    low, high = d.min(), d.max()
    if high == low:
        return np.zeros_like(d)
    return (d - low) / (high - low)


def update_strength(
    alpha_old, d_hat, memory: float = 0.1, mapping: str = "paper", beta: float | None = None
) -> np.ndarray:
    """The per-sample distillation strength after a difficulty pass, with memory of the old one.

    The spec, step 2: `alpha = lambda * alpha_old + (1 - lambda) * current` with lambda = `memory`
    (docs/sakd.md, "Memory lambda = 0.1") and `current`:
    - mapping "paper": `1 - d_hat`, so easy-to-transfer samples (low d_hat) move toward 1 (the KD
      loss dominates) and difficult ones toward 0 (the label loss dominates).
    - mapping "released": `beta * d_hat`, the released code's mapping (a higher difficulty gives a
      higher KD weight, the opposite of the paper's words; docs/sakd.md "Where the released
      code differs"). For comparison only. It needs the current interruption rate `beta`. The
      memory is applied as for the paper mapping so that the flag changes one thing; pass
      memory=0 for the bare `alpha = beta * d_hat`.

    Args:
      alpha_old: array-like [N], the strengths before the update (zeros before the first pass).
      d_hat: array-like [N], normalised difficulty from `normalise_difficulty`.
      memory: lambda in [0, 1).
      mapping: one of `MAPPINGS`.
      beta: interruption rate in [0, 1]; required by, and only used by, mapping "released".

    Returns:
      float64 array [N], values in [0, 1] when the inputs are.

    Raises:
      ValueError: unknown mapping, memory outside [0, 1), shapes that differ, or mapping
        "released" without a beta in [0, 1].
    """
    check_mapping(mapping)
    check_memory(memory)
    alpha_old = np.asarray(alpha_old, dtype=np.float64)
    d_hat = np.asarray(d_hat, dtype=np.float64)
    if alpha_old.shape != d_hat.shape:
        raise ValueError(f"alpha_old shape {alpha_old.shape} and d_hat shape {d_hat.shape} differ")
    if mapping == "paper":
        current = 1.0 - d_hat
    else:
        if beta is None or not 0.0 <= beta <= 1.0:
            raise ValueError(f'mapping "released" needs beta in [0, 1], got {beta}')
        current = beta * d_hat
    return memory * alpha_old + (1.0 - memory) * current


def sample_adaptive_loss(
    label_loss: tf.Tensor, distill_loss: tf.Tensor, alpha: tf.Tensor
) -> tf.Tensor:
    """Per-sample SAKD loss `L_i = (1 - alpha_i) * L_label_i + alpha_i * L_distill_i`: [B].

    The spec, step 2. `label_loss` and `distill_loss` are the "label_loss" and "distill_loss"
    vectors of `losses.distillation_losses`; `alpha` is each sample's strength, gathered by the
    batch's `index`. The strength is a fixed weight: no gradient flows into it. Float32 throughout.

    Raises:
      ValueError: static shapes that differ (a [B] against [B, 1] broadcast gives a wrong loss).
    """
    label_loss = tf.cast(label_loss, tf.float32)
    distill_loss = tf.cast(distill_loss, tf.float32)
    alpha = tf.stop_gradient(tf.cast(alpha, tf.float32))
    for name, value in (("distill_loss", distill_loss), ("alpha", alpha)):
        if not value.shape.is_compatible_with(label_loss.shape):
            raise ValueError(
                f"sample_adaptive_loss: {name} shape {value.shape} and label_loss shape "
                f"{label_loss.shape} differ"
            )
    return (1.0 - alpha) * label_loss + alpha * distill_loss
