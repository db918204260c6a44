"""Keras layers and video models; `build_model_from_flagfile` turns a `models/*.flags` preset into one."""

from __future__ import annotations

import os

import keras

from yt8m_kd.modeling.classifiers import (
    ContextGating,
    LogisticClassifier,
    MixtureOfExpertsClassifier,
)
from yt8m_kd.modeling.config import ModelConfig
from yt8m_kd.modeling.frame_encoders import (
    BACKBONES,
    FrameEncoderVideoModel,
    MaskedMeanPooling,
    build_frame_encoder_model,
    load_backbone_weights,
)
from yt8m_kd.modeling.nextvlad import NeXtVLAD
from yt8m_kd.modeling.video_models import (
    Dequantize,
    NeXtVLADVideoModel,
    build_video_model,
    count_flops_per_video,
    make_classifier,
    model_size,
)

__all__ = [
    "BACKBONES",
    "ContextGating",
    "Dequantize",
    "FrameEncoderVideoModel",
    "LogisticClassifier",
    "MaskedMeanPooling",
    "MixtureOfExpertsClassifier",
    "ModelConfig",
    "NeXtVLAD",
    "NeXtVLADVideoModel",
    "build_frame_encoder_model",
    "build_model_from_flagfile",
    "build_video_model",
    "config_from_flagfile",
    "count_flops_per_video",
    "load_backbone_weights",
    "make_classifier",
    "model_size",
]


def config_from_flagfile(path: str, **overrides) -> ModelConfig:
    """The ModelConfig of an absl flagfile preset (`models/*.flags`), with `overrides` applied.

    The flagfile is parsed into a private FlagValues, so the global FLAGS are left alone. Flags that
    are not model flags (batch size, learning rate, ...) are parsed and ignored here.
    """
    # Imported here: yt8m_kd.flags imports yt8m_kd.modeling.config, so a top-level import is circular.
    from absl import flags

    from yt8m_kd import flags as yt8m_flags

    if not os.path.isfile(path):
        raise FileNotFoundError(f"flagfile not found: {path}")
    fv = flags.FlagValues()
    yt8m_flags.define_all_flags(fv)
    fv(["prog", "--flagfile=" + path])
    if "feature_sizes" in overrides:
        overrides["feature_sizes"] = tuple(int(s) for s in overrides["feature_sizes"])
    return yt8m_flags.model_config_from_flags(fv).replace(**overrides)


def build_model_from_flagfile(path: str, **overrides) -> keras.Model:
    """Builds (weights created) the video model of a flagfile preset, with ModelConfig `overrides`.

    Example: `build_model_from_flagfile("models/tiny_teacher.flags", num_classes=10)`.
    """
    return build_video_model(config_from_flagfile(path, **overrides))
