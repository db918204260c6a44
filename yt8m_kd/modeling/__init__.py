"""Keras layers and video models. A preset becomes a model with
`build_video_model(yt8m_kd.flags.read_flagfile("models/teacher.flags").model)`.

Modules, each importing only those above it:
  normalization   GlobalBatchNormalization (batch norm synchronised across replicas)
  nextvlad        the NeXtVLAD layer
  classifiers     context gating, logistic and mixture-of-experts classifiers
  flops           analytic FLOPs of NeXtVLAD pooling and the video head
  video_head      what both video models share: classifier choice, head call, config round trip
  backbones       image backbones (registry, preprocessing, weights, profiled cost per frame)
  video_models    NeXtVLAD video model on YouTube-8M features, with its Dequantize layer
  frame_encoders  image video model: a backbone per frame, then pooling and the head
  builders        build_video_model, count_flops_per_video, model_size: either model from a config
  predict         a batch -> model inputs and class probabilities
"""

from __future__ import annotations

from yt8m_kd.modeling.backbones import BACKBONES, load_backbone_weights
from yt8m_kd.modeling.builders import build_video_model, count_flops_per_video, model_size
from yt8m_kd.modeling.classifiers import (
    ContextGating,
    LogisticClassifier,
    MixtureOfExpertsClassifier,
)
from yt8m_kd.modeling.frame_encoders import (
    FrameEncoderVideoModel,
    MaskedMeanPooling,
    build_frame_encoder_model,
)
from yt8m_kd.modeling.nextvlad import NeXtVLAD
from yt8m_kd.modeling.video_head import make_classifier
from yt8m_kd.modeling.video_models import Dequantize, NeXtVLADVideoModel

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
