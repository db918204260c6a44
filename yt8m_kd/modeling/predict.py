"""From a batch of the batch contract to a model's inputs and class probabilities.

What training, evaluation, the teacher cache, timing and export share: a teacher sees all frames,
a k-frame student the frames its selection picks (`yt8m_kd.data.sampling`), and the logits become
probabilities by a softmax (single-label data) or a sigmoid per class (multi-label data).

Where a student's frames are selected: by `model_inputs`, inside the step, for a batch of all
frames (evaluation, serving, online distillation); or earlier, in tf.data on the host, by
`select_student_frames` (training without a teacher in the step, docs/design.md "Training loop"),
which marks the batch with `FRAME_INDICES` so that `model_inputs` does not select again.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from yt8m_kd.configs import ModelConfig
from yt8m_kd.data import sampling

# Random-k selection in training draws from this stateless seed, offset by the run's seed, the
# replica and the step, so that every step and replica differ while a rerun of the same step is
# identical (`training_selection_seed`).
SELECTION_SEED = 7919

# The batch key of a batch whose frames are a student's k selected frames already ([B, k] int32:
# which frame of its video each selected frame is, -1 at padding). Its presence, not the frames'
# shape, is what tells `model_inputs` not to select again.
FRAME_INDICES = "frame_indices"


def training_selection_seed(
    run_seed: int, replica_id: int | tf.Tensor, step: int | tf.Tensor
) -> tf.Tensor:
    """[2] int64 stateless seed of one replica's random-k selection at one training step.

    [SELECTION_SEED + 1000 * run_seed + replica_id, step]: the step computes it from its replica
    context and the optimizer's step counter, the host pipeline from its input pipeline and the
    position of the batch (`yt8m_kd.training.loop`); both give the same seed for the same batch.
    """
    return tf.stack(
        [
            tf.cast(SELECTION_SEED + 1000 * run_seed, tf.int64) + tf.cast(replica_id, tf.int64),
            tf.cast(step, tf.int64),
        ]
    )


def select_student_frames(
    batch: dict[str, tf.Tensor], model_config: ModelConfig, seed: tf.Tensor | None = None
) -> dict[str, tf.Tensor]:
    """The batch with a student's k selected frames in place of all frames (a tf.data map).

    `frames` becomes [B, k, ...], `num_frames` min(n, k), and `FRAME_INDICES` [B, k] is added; the
    other keys are kept. With the same seed, `model_inputs` of the result equals `model_inputs` of
    the batch of all frames.

    Raises:
      ValueError: the model is not a student (k_frames=0), or the batch is selected already.
    """
    if model_config.k_frames <= 0:
        raise ValueError("frames are selected for a k-frame student; this model sees all frames")
    if FRAME_INDICES in batch:
        raise ValueError("the batch's frames are selected already")
    frames, num_frames, indices = sampling.select_frames_with_indices(
        batch["frames"],
        batch["num_frames"],
        model_config.k_frames,
        model_config.frame_selection,
        seed=seed,
    )
    return {**batch, "frames": frames, "num_frames": num_frames, FRAME_INDICES: indices}


def _check_selected(batch: dict[str, tf.Tensor], model_config: ModelConfig) -> None:
    """A batch of selected frames fits only a student of the same k (checked when traced)."""
    k = batch[FRAME_INDICES].shape[-1]
    if model_config.k_frames <= 0:
        raise ValueError(
            f"the batch holds {k} selected frames per video; a model of all frames "
            "(k_frames=0) cannot read it"
        )
    if k is not None and k != model_config.k_frames:
        raise ValueError(
            f"the batch holds {k} selected frames per video; the model sees "
            f"k_frames={model_config.k_frames}"
        )


def model_inputs(
    batch: dict[str, tf.Tensor], model_config: ModelConfig, seed: tf.Tensor | None = None
) -> dict[str, tf.Tensor]:
    """The model's inputs for a batch: all frames for a teacher, k selected frames for a student.

    A batch with `FRAME_INDICES` holds the student's frames already (`select_student_frames`):
    they are passed on as they are, and `seed` is not used.
    """
    frames, num_frames = batch["frames"], batch["num_frames"]
    if FRAME_INDICES in batch:
        _check_selected(batch, model_config)
    elif model_config.k_frames > 0:
        frames, num_frames = sampling.select_frames(
            frames, num_frames, model_config.k_frames, model_config.frame_selection, seed=seed
        )
    return {"frames": frames, "num_frames": num_frames}


def probabilities(logits: tf.Tensor, single_label: bool) -> tf.Tensor:
    """Class probabilities: a softmax over the classes of single-label data (UCF101), an
    independent sigmoid per class of multi-label data (YouTube-8M), as the label losses assume."""
    return tf.nn.softmax(logits, axis=-1) if single_label else tf.sigmoid(logits)


def evaluation_seeds(batch: dict[str, tf.Tensor]) -> tf.Tensor:
    """[B, 2] int64 stateless seeds, one per video, for a random-k student at evaluation.

    A video's seed is a fingerprint (farmhash64) of its `video_id`; a batch without ids (the
    frames alone: the serve_frames signature, timing) fingerprints each video's valid frames
    instead, padding zeroed so that what lies past num_frames changes nothing. Either way the k
    frames a video gets depend on the video (and the padded length T) only, never on its position
    in the batch or on the batch size. Videos without an id (all "") share one seed.
    """
    if "video_id" in batch:
        content = batch["video_id"]  # [B] string
    else:
        frames = tf.convert_to_tensor(batch["frames"])  # [B, T, ...]
        num_frames = tf.cast(batch["num_frames"], tf.int32)
        valid = tf.range(tf.shape(frames)[1])[tf.newaxis, :] < num_frames[:, tf.newaxis]
        for _ in range(frames.shape.rank - 2):  # broadcast over the per-frame dimensions
            valid = valid[..., tf.newaxis]
        content = tf.where(valid, frames, tf.zeros_like(frames))
    fingerprint = tf.bitcast(tf.fingerprint(content), tf.int64)  # [B, 8] uint8 -> [B]
    stream = tf.fill(tf.shape(fingerprint), tf.constant(SELECTION_SEED, tf.int64))
    return tf.stack([stream, fingerprint], axis=1)


def make_predict_fn(
    model: keras.Model, model_config: ModelConfig, single_label: bool = False
) -> Callable:
    """A tf.function batch -> class probabilities [B, C], inference mode.

    A random-k student draws each video's frames from a seed of its own (`evaluation_seeds`), so
    that evaluation is repeatable and a video's scores do not depend on the batch it is in.
    (Training draws from one seed per step and replica instead: new frames every step.)
    """
    random_k = model_config.k_frames > 0 and model_config.frame_selection == "random"

    @tf.function(reduce_retracing=True)
    def predict(batch):
        seed = evaluation_seeds(batch) if random_k else None
        outputs = model(model_inputs(batch, model_config, seed), training=False)
        return probabilities(outputs["logits"], single_label)

    return predict
