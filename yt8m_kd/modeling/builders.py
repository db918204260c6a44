"""A `ModelConfig` -> its video model, its analytic cost and its size: frame features
(`config.backbone == ""`) give the NeXtVLAD model of `video_models`, an image backbone the image
model of `frame_encoders`.
"""

from __future__ import annotations

import keras
import numpy as np

from yt8m_kd.configs import ModelConfig
from yt8m_kd.modeling.frame_encoders import build_frame_encoder_model, count_frame_encoder_flops
from yt8m_kd.modeling.video_models import build_nextvlad_video_model, count_nextvlad_video_flops


def build_video_model(config: ModelConfig) -> keras.Model:
    """Constructs the model of `config` and builds it on a tiny dummy batch, so its weights exist.

    Frame features (`config.backbone == ""`) give a `NeXtVLADVideoModel`; an image backbone a
    `FrameEncoderVideoModel`, with its pretrained backbone weights loaded (`backbone_weights`).
    """
    if config.backbone:
        return build_frame_encoder_model(config)
    return build_nextvlad_video_model(config)


def count_flops_per_video(config: ModelConfig, num_frames: int) -> int:
    """Analytic forward FLOPs for one video of `num_frames` frames (multiply-add = 2 FLOPs).

    Every matmul and elementwise op of the model in inference mode, by the conventions of
    `yt8m_kd.modeling.flops`: for frame features `count_nextvlad_video_flops` (about 2.9 GFLOP at
    300 frames and 0.45 GFLOP at 30 at the reference configuration, docs/nextvlad.md); an image
    model (`config.backbone`) adds its backbone on every frame (`count_frame_encoder_flops`).
    """
    if config.backbone:
        return count_frame_encoder_flops(config, num_frames)
    return count_nextvlad_video_flops(config, num_frames)


def model_size(model: keras.Model, config: ModelConfig, max_frames: int) -> dict:
    """Parameter counts and forward cost of a built model at the frames it sees per video.

    Non-trainable parameters are the batch-norm statistics (`non_trainable_weights`; the dropout
    seed state, a Keras variable too, is not a parameter), and a frozen image backbone's weights.
    """
    frames = config.k_frames if config.k_frames > 0 else max_frames
    return {
        "trainable_params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        "non_trainable_params": int(sum(np.prod(w.shape) for w in model.non_trainable_weights)),
        "frames": frames,
        "gflops_per_video": count_flops_per_video(config, frames) / 1e9,
    }
