"""From a batch of the batch contract to a model's inputs and class probabilities.

What training, evaluation, the teacher cache, timing and export share: a teacher sees all frames,
a k-frame student the frames its selection picks (`yt8m_kd.data.sampling`), and the logits become
probabilities by a softmax (single-label data) or a sigmoid per class (multi-label data).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from yt8m_kd.configs import ModelConfig
from yt8m_kd.data import sampling

# Random-k selection inside a step draws from this stateless seed, offset by the step and replica
# so that every step and replica differ while a rerun of the same step is identical.
SELECTION_SEED = 7919


def model_inputs(
    batch: dict[str, tf.Tensor], model_config: ModelConfig, seed: tf.Tensor | None = None
) -> dict[str, tf.Tensor]:
    """The model's inputs for a batch: all frames for a teacher, k selected frames for a student."""
    frames, num_frames = batch["frames"], batch["num_frames"]
    if model_config.k_frames > 0:
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
