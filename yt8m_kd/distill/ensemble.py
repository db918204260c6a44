"""Several teachers cached as one: their averaged probabilities, stored as logits.

The strongest YouTube-8M entries of 2018 distilled an ensemble of teachers into one model under a
size limit. `launchers/cache_teacher.py --teacher_run_dir=runs/t1,runs/t2` caches such an
ensemble in the cache's usual row format (video_id, logits [C], repr [H], float32), so that a
student reads it exactly like the cache of one teacher:

- logits: the teachers' class probabilities are averaged, p = mean_t prob(z_t), and stored as
  logits that give p back through the same probability function the losses use
  (`yt8m_kd.modeling.predict.probabilities`: a sigmoid per class for multi-label YouTube-8M, a
  softmax for single-label UCF101):
    multi-label:  z = log p - log(1 - p)   (log-odds; sigmoid(z) = p)
    single-label: z = log p                (softmax(log p) = p, as the p sum to 1)
  Both are computed from log-probabilities in float64 with a log-sum-exp over the teachers
  (log p = logsumexp_t log prob(z_t) - log T), never from p itself: a float32 p rounds to 0 or 1
  for confident teachers (|z| > ~17), where log(p) or log(1 - p) would be infinite. The result is
  clipped to the float32 range, so a stored value is finite even for an infinite teacher logit.
- repr: the mean of the teachers' representations when their widths agree, else the first
  teacher's (teacher_cache.json says which under "ensemble").

The teachers run batch by batch on the same input batch (`EnsembleTeacher`): the data is read once
and no teacher's outputs for the whole set are ever held. They must read the data the same way
(`check_teachers`): the first teacher's reader feeds them all.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from yt8m_kd.configs import RunConfig

# The largest finite float32: combined logits are clipped to +-this before they are stored.
_FLOAT32_MAX = float(np.finfo(np.float32).max)

# What every teacher of an ensemble must share, as (label, where it is in a RunConfig): the first
# teacher's reader feeds all of them, and the averaged logits need one label set.
_SHARED_FIELDS = (
    ("dataset", lambda c: c.data.dataset),
    ("num_classes", lambda c: c.model.num_classes),
    ("feature_names", lambda c: tuple(c.data.feature_names)),
    ("feature_sizes", lambda c: tuple(c.model.feature_sizes)),
    ("max_frames", lambda c: c.data.max_frames),
    ("image_size", lambda c: c.model.image_size),
    ("class_index_file", lambda c: c.data.class_index_file),
)


def _shown(value) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)


def check_teachers(teachers: Sequence[tuple[str, RunConfig]]) -> None:
    """The teachers (run directory, its RunConfig) can be cached as one ensemble: they read the
    same data (family, features and sizes, frames, image size, class index file) and predict the
    same classes.

    Raises:
      ValueError: one line naming the first field that differs and both runs.
    """
    (first_dir, first), *others = teachers
    for run_dir, config in others:
        for label, field in _SHARED_FIELDS:
            if field(config) != field(first):
                raise ValueError(
                    f"the teachers of an ensemble must agree on {label}: {first_dir} has "
                    f"{label}={_shown(field(first))}, {run_dir} has {label}={_shown(field(config))}"
                )


def combine_logits(logits: Sequence[tf.Tensor], single_label: bool) -> tf.Tensor:
    """Logits [B, C] float32 of the teachers' mean probabilities, from their logits [B, C] each.

    Multi-label: log-odds of p = mean_t sigmoid(z_t); single-label: log p, p = mean_t softmax(z_t)
    (see the module docstring). Computed in float64 from log-probabilities and clipped to the
    float32 range: finite for any finite input, and for infinite ones.
    """
    z = tf.stack([tf.cast(one, tf.float64) for one in logits])  # [T, B, C]
    log_count = math.log(len(logits))
    if single_label:
        # log p = log(1/T sum_t softmax(z_t)), a log-sum-exp of log-softmaxes.
        combined = tf.reduce_logsumexp(tf.nn.log_softmax(z, axis=-1), axis=0) - log_count
    else:
        # log p and log(1 - p), with log(1 - sigmoid(z)) = log_sigmoid(-z); the log T cancels.
        log_p = tf.reduce_logsumexp(tf.math.log_sigmoid(z), axis=0)
        log_not_p = tf.reduce_logsumexp(tf.math.log_sigmoid(-z), axis=0)
        combined = log_p - log_not_p
    return tf.cast(tf.clip_by_value(combined, -_FLOAT32_MAX, _FLOAT32_MAX), tf.float32)


def repr_mode(repr_sizes: Sequence[int]) -> str:
    """The repr combination: "mean" when every teacher's repr has the same width, else "first"."""
    return "mean" if len(set(repr_sizes)) == 1 else "first"


def combine_reprs(reprs: Sequence[tf.Tensor], mode: str) -> tf.Tensor:
    """The ensemble's repr [B, H] float32: the mean of the teachers' (in float64, so exactly the
    rounded mean), or the first teacher's."""
    if mode == "first":
        return tf.cast(reprs[0], tf.float32)
    stacked = tf.stack([tf.cast(one, tf.float64) for one in reprs])
    return tf.cast(tf.reduce_mean(stacked, axis=0), tf.float32)


def description(single_label: bool, repr_sizes: Sequence[int]) -> dict:
    """How the outputs were combined, as teacher_cache.json records it under "ensemble"."""
    mode = repr_mode(repr_sizes)
    return {
        "num_teachers": len(repr_sizes),
        "probabilities": "softmax" if single_label else "sigmoid",
        "logits": "log(mean_t softmax(z_t))"
        if single_label
        else "log(p / (1 - p)), p = mean_t sigmoid(z_t)",
        "repr": "mean" if mode == "mean" else "first teacher's (repr widths differ)",
        "repr_sizes": list(repr_sizes),
    }


@dataclasses.dataclass
class EnsembleTeacher:
    """The teachers called as one video model: inputs -> {"logits", "repr"} combined.

    Every teacher sees the same inputs (all are all-frames models, so `model_inputs` gives each
    the same frames); what the cache builder calls `model` may be this.
    """

    models: list
    single_label: bool
    repr_mode: str = "mean"

    def __call__(self, inputs: dict[str, tf.Tensor], training: bool = False) -> dict:
        outputs = [model(inputs, training=training) for model in self.models]
        return {
            "logits": combine_logits([o["logits"] for o in outputs], self.single_label),
            "repr": combine_reprs([o["repr"] for o in outputs], self.repr_mode),
        }
