"""Keras layers and video models. A preset becomes a model with
`build_video_model(yt8m_kd.flags.read_flagfile("models/teacher.flags").model)`."""

from __future__ import annotations

from yt8m_kd.modeling.classifiers import (
    ContextGating,
    LogisticClassifier,
    MixtureOfExpertsClassifier,
)
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
    "NeXtVLAD",
    "NeXtVLADVideoModel",
    "build_frame_encoder_model",
    "build_video_model",
    "count_flops_per_video",
    "load_backbone_weights",
    "make_classifier",
    "model_size",
]
