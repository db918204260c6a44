"""Measured inference time of a video model, per video.

The fewer-frames paper (Bhardwaj et al., CVPR 2019) reports inference time beside FLOPs, because a
student that sees k frames saves less time than FLOPs: the fixed costs of a call (the hidden FC,
the gating and the classifier, dispatch) do not shrink with k. This module measures that time.

What is timed: one call of `make_predict_fn` per batch, which is the model's inference path as
evaluation runs it - a student's frame selection (`model_inputs`), the dequantization that is the
model's first op, the forward pass in inference mode, the sigmoid - and the copy of the
probabilities back to host memory (`.numpy()`, which also waits for the device to finish).

What is not timed: reading, parsing and padding the records (the batches are materialised in
memory first), tracing the tf.function (a warm-up call per batch shape comes first), metrics.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable

import keras
import tensorflow as tf

from yt8m_kd.configs import ModelConfig
from yt8m_kd.modeling.predict import make_predict_fn


def _shape_key(batch: dict[str, tf.Tensor]) -> tuple:
    return tuple(tuple(batch[name].shape) for name in sorted(batch))


def inference_ms_per_video(
    model: keras.Model,
    model_config: ModelConfig,
    dataset: Iterable[dict[str, tf.Tensor]],
    *,
    warmup_batches: int = 1,
    repeats: int = 3,
) -> float:
    """Median over `repeats` passes of the wall time of inference per video, in milliseconds.

    Args:
      model: a video model mapping {"frames", "num_frames"} to {"logits", ...}.
      model_config: its configuration; k_frames > 0 makes the timed call select k frames.
      dataset: batches of `yt8m.frame_dataset` (or any iterable of such dicts), not repeated;
        materialised with `list(dataset)` before anything is timed. Only "frames" and
        "num_frames" are passed to the model.
      warmup_batches: batches run before the timed passes (more warm calls, beyond tracing).
        Whatever its value, every distinct batch shape (a last, smaller batch) is run once
        before timing, so that no timed pass includes tracing.
      repeats: timed passes over all batches; the median pass is reported.

    Returns:
      Milliseconds per video: the median pass time divided by the number of videos.

    Raises:
      ValueError: repeats < 1, warmup_batches < 0, or a dataset without videos.
    """
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be at least 1")
    if warmup_batches < 0:
        raise ValueError(f"warmup_batches={warmup_batches} must be >= 0")
    batches = [
        {"frames": batch["frames"], "num_frames": batch["num_frames"]} for batch in list(dataset)
    ]
    num_videos = sum(int(batch["num_frames"].shape[0]) for batch in batches)
    if num_videos == 0:
        raise ValueError("no video to time inference on")

    predict = make_predict_fn(model, model_config)
    warmup = [batches[i % len(batches)] for i in range(warmup_batches)]
    seen = {_shape_key(batch) for batch in warmup}
    for batch in batches:  # one call per batch shape not warmed up yet: its tracing
        if _shape_key(batch) not in seen:
            seen.add(_shape_key(batch))
            warmup.append(batch)
    for batch in warmup:
        predict(batch).numpy()

    pass_seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        for batch in batches:
            predict(batch).numpy()
        pass_seconds.append(time.perf_counter() - started)
    return 1000.0 * statistics.median(pass_seconds) / num_videos
